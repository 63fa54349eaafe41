/**
 * Text the demo tokenizer learns its merges from: plain English about the product, some code and numbers,
 * and a few non-Latin lines, so common words become single tokens and every script still round-trips.
 */
export const DEMO_CORPUS = `
The edge gateway speaks the OpenAI API. It authenticates tenants by API key, applies rate limits, caches
prompts and routes each request to the nearest healthy region, where GPU pods run a mixture-of-experts model.
A mixture of experts model routes every token to a few experts out of many, so only a small part of the
parameters is active for each token. The attention keeps a compressed latent cache per token and per layer.
Hello! How are you today? I am fine, thank you. What would you like to know about the weather, the news,
the time, or the price of tokens? Tokens are cheaper when the prompt is already in the cache.
The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog again and again.
Once upon a time there was a small model that wanted to answer every question it was asked.
It read books, it wrote code, and it learned that the best answer is a short and honest one.
function add(a, b) { return a + b; }
const result = await fetch("https://example.com/v1/chat/completions", { method: "POST" });
for (let i = 0; i < 10; i++) { console.log(i * 2); }
def hello(name): return f"Hello, {name}!"
SELECT id, name FROM tenants WHERE status = 'active' ORDER BY created_at;
1 2 3 4 5 6 7 8 9 10 100 1000 2024 2025 2026 3.14159 42 0.5 99%
Bonjour, comment allez-vous ? Guten Tag! ¿Qué tal? Привет, как дела? こんにちは。你好，世界。안녕하세요.
`.repeat(3);
