/**
 * The URL of `path` ("/v1/chat/completions", "/health") on a backend. A backend's base URL may carry a path
 * prefix (a proxy that mounts it under /eu-1/) and may end in the "/v1" that OpenAI clients' base URLs carry
 * ("https://api.example.com/v1"): the prefix is kept, a trailing "/v1" is not doubled, a query string is kept.
 */
export function backendUrl(base: string, path: string): string {
  const u = new URL(base);
  u.pathname = u.pathname.replace(/\/+$/, "").replace(/\/v1$/, "") + path;
  return u.toString();
}
