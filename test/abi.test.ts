// src/abi/abi.ts mirrors constants compiled into the WASM core; the debug build exports each of
// them as a global, so a change on one side that the other misses fails here.
import { describe, it, expect } from "vitest";
import {
  RECORD_HEADER_BYTES, RecordType, RECORD_MAX_LENGTH, ENCODE_LZ4, ENCODE_DELTA, ENCODE_RAW_RUNS, ENCODE_SKIP_ZERO,
  Enc, Dec, ENCODE_STAT_NAMES, LZ4_TABLE_BYTES, LZ4_ERRORS, DELTA_ERRORS, BATCH_ERRORS,
} from "../src/abi/abi.js";
import { DIGEST_GROUP_BYTES } from "../src/memory/layout.js";
import { debugCore } from "./helpers.js";

const wasm = debugCore(new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }));

function constant(name: string): number {
  const global = wasm[name];
  if (!(global instanceof WebAssembly.Global)) throw new Error(`the debug core exports no constant ${name}`);
  return Number(global.value);
}

describe("the ABI mirror", () => {
  it("records and encoder flags", () => {
    expect(constant("RECORD_HEADER_BYTES")).toBe(RECORD_HEADER_BYTES);
    expect(constant("RECORD_MAX_LENGTH")).toBe(RECORD_MAX_LENGTH);
    for (const [name, value] of Object.entries(RecordType)) expect(constant(`RECORD_${name.toUpperCase()}`), name).toBe(value);
    expect([constant("ENCODE_LZ4"), constant("ENCODE_DELTA"), constant("ENCODE_RAW_RUNS"), constant("ENCODE_SKIP_ZERO")]).toEqual([ENCODE_LZ4, ENCODE_DELTA, ENCODE_RAW_RUNS, ENCODE_SKIP_ZERO]);
  });

  it("the encoder and decoder contexts, field by field", () => {
    const snake = (name: string) => name.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase();
    for (const [name, offset] of Object.entries(Enc)) expect(constant(name === "bytes" ? "ENC_CONTEXT_BYTES" : `ENC_${snake(name)}`), `Enc.${name}`).toBe(offset);
    for (const [name, offset] of Object.entries(Dec)) expect(constant(name === "bytes" ? "DEC_CONTEXT_BYTES" : `DEC_${snake(name)}`), `Dec.${name}`).toBe(offset);
    expect(constant("ENC_STAT_COUNT")).toBe(ENCODE_STAT_NAMES.length);
    ENCODE_STAT_NAMES.forEach((name, i) => expect(constant(`STAT_${snake(name)}`), name).toBe(i * 8));
    expect(Enc.stats + ENCODE_STAT_NAMES.length * 8).toBeLessThanOrEqual(Enc.runs);
    expect(constant("LZ4_TABLE_BYTES")).toBe(LZ4_TABLE_BYTES);
  });

  it("the digest's group size", () => {
    expect(2 ** constant("GROUP_SHIFT")).toBe(DIGEST_GROUP_BYTES);
  });

  it("every error code the core returns has a message, and no message names a code it does not return", () => {
    const lz4 = [constant("LZ4_ERR_TRUNCATED"), constant("LZ4_ERR_OUTPUT_OVERFLOW"), constant("LZ4_ERR_BAD_OFFSET")];
    const delta = [constant("DELTA_ERR_TRUNCATED"), constant("DELTA_ERR_BAD_RUN"), constant("DELTA_ERR_PAST_END")];
    expect(lz4.sort()).toEqual(Object.keys(LZ4_ERRORS).map(Number).sort());
    expect(delta.sort()).toEqual(Object.keys(DELTA_ERRORS).map(Number).sort());
    const batch = ["TRUNCATED_HEADER", "PAGE_RANGE", "UNKNOWN_TYPE", "BAD_LENGTH", "TRUNCATED_PAYLOAD", "UNEXPECTED", "TOO_MANY", "LZ4_SIZE"].map((n) => constant(`BATCH_ERR_${n}`));
    const codes = [...batch, ...lz4.map((c) => constant("BATCH_ERR_LZ4") + c), ...delta.map((c) => constant("BATCH_ERR_DELTA") + c)];
    expect(codes.sort((a, b) => a - b)).toEqual(Object.keys(BATCH_ERRORS).map(Number).sort((a, b) => a - b));
  });
});
