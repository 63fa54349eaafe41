import { describe, expect, it } from "vitest";
import { isJsonContentType, jsonDepthExceeds, parseJsonBody } from "../../src/http/json-body.js";
import { ApiError } from "../../src/openai/errors.js";

const enc = (s: string) => new TextEncoder().encode(s);

function rejects(bytes: Uint8Array): ApiError {
  try {
    parseJsonBody(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error("expected a rejection");
}

describe("parseJsonBody", () => {
  it("parses an object", () => {
    expect(parseJsonBody(enc('{"a":[1,{"b":2}]}'))).toEqual({ a: [1, { b: 2 }] });
  });
  it("strips a UTF-8 BOM", () => {
    expect(parseJsonBody(new Uint8Array([0xef, 0xbb, 0xbf, ...enc("{}")]))).toEqual({});
  });
  it("refuses an empty body", () => {
    expect(rejects(new Uint8Array()).message).toMatch(/empty/);
  });
  it("refuses invalid UTF-8", () => {
    const e = rejects(new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/UTF-8/);
  });
  it("refuses deep nesting before parsing", () => {
    expect(rejects(enc("[".repeat(100_000) + "]".repeat(100_000))).message).toMatch(/nesting/);
  });
  it("ignores brackets inside strings, including escaped quotes", () => {
    expect(jsonDepthExceeds(`{"a":"${"[".repeat(500)}\\"${"{".repeat(500)}"}`, 4)).toBe(false);
    expect(jsonDepthExceeds("[[[[[]]]]]", 4)).toBe(true);
    expect(jsonDepthExceeds("[[[[]]]]", 4)).toBe(false);
  });
  it("reports the parser's complaint for malformed JSON", () => {
    const e = rejects(enc('{"a":'));
    expect(e.code).toBe("invalid_json");
  });
});

describe("isJsonContentType", () => {
  it.each([
    [null, true],
    ["application/json", true],
    ["application/json; charset=utf-8", true],
    ["APPLICATION/JSON", true],
    ["application/vnd.api+json", true],
    ["text/plain", false],
    ["application/x-www-form-urlencoded", false],
    ["multipart/form-data; boundary=x", false],
  ])("%s → %s", (v, ok) => expect(isJsonContentType(v)).toBe(ok));
});
