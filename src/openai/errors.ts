import { z } from "zod";

/** OpenAI's error envelope: every error the gateway or a pod returns has exactly this shape. */
export const ErrorBodySchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "tokens"
  | "requests"
  | "server_error"
  | "api_error";

/** An error destined for a client. Thrown inside handlers; rendered once by the app's error handler. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    opts: { type?: ErrorType; param?: string | null; code?: string | null; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.type = opts.type ?? (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.headers = opts.headers ?? {};
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function errorBody(message: string, type: ErrorType, param: string | null = null, code: string | null = null): ErrorBody {
  return { error: { message, type, param, code } };
}

// Constructors for the errors both sides raise, so wording and codes stay identical everywhere.
export const errors = {
  invalidJson: (detail: string) =>
    new ApiError(400, `We could not parse the JSON body of your request. (${detail})`, { code: "invalid_json" }),
  invalidParam: (param: string | null, message: string, code: string | null = "invalid_value") =>
    new ApiError(400, message, { param, code }),
  missingApiKey: () =>
    new ApiError(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      { code: "invalid_api_key" },
    ),
  invalidApiKey: (display: string) =>
    new ApiError(401, `Incorrect API key provided: ${display}.`, { code: "invalid_api_key" }),
  modelNotFound: (model: string) =>
    new ApiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, {
      param: "model",
      code: "model_not_found",
    }),
  notFound: (what: string) => new ApiError(404, what, { code: "not_found" }),
  unknownRoute: (method: string, path: string) =>
    new ApiError(404, `Invalid URL (${method} ${path})`, { code: "unknown_url" }),
  methodNotAllowed: (method: string, path: string) =>
    new ApiError(405, `Method ${method} is not allowed on ${path}.`, { code: "method_not_allowed" }),
  bodyTooLarge: (limit: number) =>
    new ApiError(413, `Request body exceeds the limit of ${limit} bytes.`, { code: "request_too_large" }),
  unsupportedMediaType: (got: string) =>
    new ApiError(415, `Unsupported Content-Type '${got}'. Send the body as application/json.`, {
      code: "unsupported_media_type",
    }),
  conflict: (message: string, code = "conflict") => new ApiError(409, message, { code }),
  upstreamUnavailable: (message: string) =>
    new ApiError(503, message, { type: "server_error", code: "upstream_unavailable" }),
  upstreamError: (message: string) => new ApiError(502, message, { type: "server_error", code: "upstream_error" }),
  internal: () =>
    new ApiError(500, "The server had an error while processing your request. Sorry about that!", {
      type: "server_error",
      code: "internal_error",
    }),
};
