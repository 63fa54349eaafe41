import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface ChatTurn {
  role: string;
  content: string | null;
  [k: string]: unknown;
}

/** Special tokens may be plain strings or HF's `{"__type": "AddedToken", "content": …}` objects. */
const tokenText = (t: unknown): string | null =>
  typeof t === "string" ? t : t && typeof t === "object" && "content" in t ? String((t as { content: unknown }).content) : null;

/**
 * The checkpoint's text side: byte-level BPE from `tokenizer.json` (via @huggingface/tokenizers) and the chat
 * template from `tokenizer_config.json` (rendered with @huggingface/jinja).
 */
export class TextCodec {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly eosIds: number[];
  /** The BOS token's id, when the tokenizer has one. */
  readonly bosId: number | undefined;
  private readonly template: Template | null;
  private readonly addBos: boolean;

  private constructor(private readonly tok: Tokenizer, config: Record<string, unknown>, eosIds: number[]) {
    this.bosToken = tokenText(config.bos_token);
    this.bosId = this.bosToken === null ? undefined : tok.token_to_id(this.bosToken);
    this.eosToken = tokenText(config.eos_token);
    const tpl = config.chat_template;
    this.template = typeof tpl === "string" ? new Template(tpl) : null;
    this.addBos = config.add_bos_token !== false;
    const eos = this.eosToken === null ? undefined : tok.token_to_id(this.eosToken);
    this.eosIds = [...new Set([...eosIds, ...(eos === undefined ? [] : [eos])])];
  }

  static load(dir: string, modelEosIds: number[] = []): TextCodec {
    const tj = join(dir, "tokenizer.json");
    if (!existsSync(tj)) throw new Error(`${dir}: no tokenizer.json`);
    const cj = join(dir, "tokenizer_config.json");
    const config = existsSync(cj) ? (JSON.parse(readFileSync(cj, "utf8")) as Record<string, unknown>) : {};
    return new TextCodec(new Tokenizer(JSON.parse(readFileSync(tj, "utf8")), config), config, modelEosIds);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Token ids of `text`; special-token strings inside it are recognised (chat templates rely on that). */
  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    const bos = this.bosId;
    return (opts.addBos ?? this.addBos) && bos !== undefined && ids[0] !== bos ? [bos, ...ids] : ids;
  }

  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return "";
    return this.tok.decode(ids, { skip_special_tokens: opts.skipSpecial ?? true, clean_up_tokenization_spaces: false });
  }

  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  tokenString(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** The prompt of a conversation: its rendered template (which brings its own BOS), ready for the reply. */
  encodeChat(turns: ChatTurn[]): number[] {
    return this.encode(this.renderChat(turns, { addGenerationPrompt: true }), { addBos: false });
  }

  /** Renders the chat template; the result already contains BOS, so encode it with `addBos: false`. */
  renderChat(messages: ChatTurn[], opts: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string {
    if (!this.template) throw new Error("this model has no chat template; use /v1/completions");
    return this.template.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.bosToken ?? "",
      eos_token: this.eosToken ?? "",
      ...opts.extra,
    });
  }
}
