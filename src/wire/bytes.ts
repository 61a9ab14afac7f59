// Bounds-checked little-endian reading and writing of small messages. Every read past the end
// of a message throws a WireError, so a decoder can never use a length it did not check.
import { WireError } from "./errors.js";

export class ByteWriter {
  private readonly view: DataView;
  private at = 0;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  static sized(length: number): ByteWriter {
    return new ByteWriter(new Uint8Array(length));
  }

  u16(x: number): this {
    this.view.setUint16(this.at, x, true);
    this.at += 2;
    return this;
  }

  u32(x: number): this {
    this.view.setUint32(this.at, x, true);
    this.at += 4;
    return this;
  }

  u64(x: bigint | number): this {
    this.view.setBigUint64(this.at, BigInt(x), true);
    this.at += 8;
    return this;
  }

  raw(data: Uint8Array): this {
    this.bytes.set(data, this.at);
    this.at += data.length;
    return this;
  }

  get length(): number {
    return this.at;
  }
}

export class ByteReader {
  private readonly view: DataView;
  private at = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): number {
    if (this.at + n > this.bytes.length) {
      throw new WireError("badFrame", `${this.what} is ${this.bytes.length} bytes, too short for its fields`);
    }
    const at = this.at;
    this.at += n;
    return at;
  }

  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }

  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  u64(): bigint {
    return this.view.getBigUint64(this.need(8), true);
  }

  /** A u16 the protocol reserves: it must be 0. */
  reserved16(): void {
    if (this.u16() !== 0) throw new WireError("badFrame", `${this.what} has reserved bits set`);
  }

  /** A u64 that must fit a JavaScript number exactly (page counts, offsets). */
  safeU64(): number {
    const x = this.u64();
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError("badFrame", `${this.what} carries ${x}, beyond 2^53`);
    return Number(x);
  }

  raw(n: number): Uint8Array {
    const at = this.need(n);
    return this.bytes.subarray(at, at + n);
  }

  rest(): Uint8Array {
    return this.raw(this.bytes.length - this.at);
  }

  /** Refuses trailing bytes: a message must be exactly as long as its fields. */
  end(): void {
    if (this.at !== this.bytes.length) {
      throw new WireError("badFrame", `${this.what} has ${this.bytes.length - this.at} unexpected trailing bytes`);
    }
  }
}
