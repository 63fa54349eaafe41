/** Pieces joined per body chunk: few chunks for a large answer, each cheap to build. */
const PIECES_PER_CHUNK = 4096;
const SPACE = new Uint8Array([0x20]);

/**
 * The 200 JSON response of a non-streaming completion, sent while it is generated. Its head goes out at once
 * (the server flushes a streamed body's head), then a space every `keepaliveMs` until `answer` settles (JSON
 * allows leading whitespace): the edge waits only so long for a response head, and could not tell a long
 * generation from a silent pod otherwise; no proxy on the way idles the connection out either. The answer's
 * text comes in pieces and is sent chunk by chunk, so an answer of hundreds of megabytes (128 choices with
 * logprobs) never has to exist as one string, which JavaScript caps at ~512 M characters. The head fixes the
 * status, so `answer` must always resolve: with an OpenAI error object where generation failed. `onCancel`: the
 * client left.
 */
export function heldJsonResponse(answer: Promise<string[]>, keepaliveMs: number, onCancel: () => void): Response {
  const encoder = new TextEncoder();
  let pieces: string[] | null = null;
  const ready = answer.then((p) => {
    pieces = p;
  });
  let next = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      if (!pieces) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const idle = await Promise.race([ready.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), keepaliveMs)))]);
        clearTimeout(timer);
        if (idle) {
          ctl.enqueue(SPACE);
          return;
        }
      }
      if (next >= pieces!.length) {
        ctl.close();
        return;
      }
      const end = Math.min(pieces!.length, next + PIECES_PER_CHUNK);
      ctl.enqueue(encoder.encode(pieces!.slice(next, end).join("")));
      next = end;
    },
    cancel() {
      onCancel();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
}
