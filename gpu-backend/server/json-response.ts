/** Pieces joined per body chunk: large enough that a small answer is one chunk, small enough to stay cheap. */
const PIECES_PER_CHUNK = 4096;

/**
 * A 200 JSON response from JSON text given in pieces, sent chunk by chunk: an answer of hundreds of megabytes
 * (128 choices with logprobs) never has to exist as one string, which JavaScript caps at ~512 M characters.
 */
export function jsonResponse(pieces: string[]): Response {
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
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
}
