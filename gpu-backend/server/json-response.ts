/** Pieces joined per body chunk: few chunks for a large answer, each cheap to build. */
const PIECES_PER_CHUNK = 4096;
/** Below this many characters an answer is sent as one string, with its length known up front. */
const SINGLE_STRING_BELOW = 1 << 20;

/**
 * A 200 JSON response from JSON text given in pieces. A large one is sent chunk by chunk: an answer of hundreds
 * of megabytes (128 choices with logprobs) never has to exist as one string, which JavaScript caps at ~512 M
 * characters.
 */
export function jsonResponse(pieces: string[]): Response {
  const headers = { "content-type": "application/json" };
  let size = 0;
  for (const p of pieces) size += p.length;
  if (size < SINGLE_STRING_BELOW) return new Response(pieces.join(""), { status: 200, headers });
  const encoder = new TextEncoder();
  let next = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (next >= pieces.length) {
        ctl.close();
        return;
      }
      const end = Math.min(pieces.length, next + PIECES_PER_CHUNK);
      ctl.enqueue(encoder.encode(pieces.slice(next, end).join("")));
      next = end;
    },
  });
  return new Response(body, { status: 200, headers });
}
