// The error table: one entry per code, numbers unique, every wire reason covered, and the README
// listing each code with its number.
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { ERRORS, PagewireError, type ErrorCode } from "../src/errors.js";
import { WireError, asWireError } from "../src/wire/errors.js";
import { Reason, type ReasonName } from "../src/wire/constants.js";

describe("the error table", () => {
  it("has unique numbers, and an entry for every wire reason whose code WireError uses", () => {
    const numbers = Object.values(ERRORS).map((e) => e.number);
    expect(new Set(numbers).size).toBe(numbers.length);
    for (const [name, code] of Object.entries(Reason) as Array<[ReasonName, number]>) {
      const error = new WireError(name, "x");
      // The first fifteen reasons share their number with their code; later ones joined codes that had numbers already.
      expect(ERRORS[error.code as ErrorCode]).toMatchObject(code <= 15 ? { wire: code, number: code } : { wire: code });
      expect(error.code).toBe(`E${name.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase()}`);
      expect(error.reasonCode).toBe(code);
    }
  });

  it("maps unexpected errors the same way on both sides", () => {
    expect(asWireError(new PagewireError("EABORTED", "stop")).reason).toBe("cancelled");
    expect(asWireError(new Error("a hook threw")).reason).toBe("internal");
    expect(asWireError(new PagewireError("ESTATE", "bad field"))).toMatchObject({ reason: "state", code: "ESTATE", number: 25 });
    expect(asWireError("a string")).toMatchObject({ reason: "internal", message: "a string" });
    const wire = new WireError("digest", "mismatch");
    expect(asWireError(wire)).toBe(wire);
  });

  it("is listed in the README, code by code", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    for (const [code, info] of Object.entries(ERRORS)) expect(readme, code).toContain(`| \`${code}\` | ${info.number} |`);
  });
});
