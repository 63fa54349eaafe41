# The GPU backend pod. Build from the repository root:
#   docker build -f infra/docker/pod.Dockerfile -t ghcr.io/moe-edge/pod:$(git rev-parse --short HEAD) .
# The model is not in the image: mount a Hugging Face checkpoint folder at /models/current (see infra/k8s).

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# GPU hosts: onnxruntime-node's install script fetches the CUDA 12 execution provider at build time.
ARG ONNXRUNTIME_NODE_INSTALL=cuda12
ENV ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL}
RUN npm ci --omit=dev --no-audit --no-fund

# CUDA 12 + cuDNN runtime libraries for the CUDA execution provider; the driver comes from the host.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
COPY --from=deps /usr/local/bin/node /usr/local/bin/node
RUN groupadd --gid 10001 pod && useradd --uid 10001 --gid pod --no-create-home --shell /usr/sbin/nologin pod
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY gpu-backend ./gpu-backend
USER 10001:10001
ENV NODE_ENV=production \
    POD_HOST=0.0.0.0 \
    POD_PORT=8100 \
    POD_MODEL=/models/current \
    POD_EXECUTION_PROVIDERS=cuda,cpu
EXPOSE 8100
# The same command `npm start` runs for each pod (scripts/pod-process.ts: POD_COMMAND); options come from POD_* variables.
ENTRYPOINT ["node", "--initial-heap-size=256", "--max-semi-space-size=64", "--import", "tsx", "gpu-backend/server/main.ts"]
