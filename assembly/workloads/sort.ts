// Integer bucket sort in the manner of NPB IS: keys u32[K] are counted into buckets, then
// scattered into place (random-looking writes all over the output); between iterations two keys
// change. Steps: a chunk of counting, the prefix sum, a chunk of scattering.
import { bytesOf, guestOf, stateOf, markWritten, nextRandom, need } from "./common";

// State: u64 PRNG, u32 iteration, u32 phase (0 count, 1 prefix, 2 scatter), u32 cursor, u32 keys.
const S_RANDOM: usize = 0;
const S_ITER: usize = 8;
const S_PHASE: usize = 12;
const S_CURSOR: usize = 16;
const S_KEYS: usize = 20;
const BUCKETS: u32 = 1 << 16;
const MAX_KEY: u32 = 1 << 24;
const CHUNK: u32 = 1 << 16;

// Layout: keys u32[K], out u32[K], positions u32[BUCKETS].
@inline function keysAt(ctx: usize): usize { return guestOf(ctx); }
@inline function outAt(ctx: usize, k: u32): usize { return keysAt(ctx) + (<usize>k << 2); }
@inline function positionsAt(ctx: usize, k: u32): usize { return outAt(ctx, k) + (<usize>k << 2); }

export function sortSize(bytes: u32): u32 {
  return (bytes - BUCKETS * 4) / 8;
}

/** 0 when a state fits this guest, else the 1-based number of its first bad field: PRNG, iteration, phase, cursor, keys. */
export function sortCheck(ctx: usize): u32 {
  const s = stateOf(ctx);
  const bytes = bytesOf(ctx);
  const keys = load<u32>(s + S_KEYS);
  if (bytes < BUCKETS * 4 + 8 || keys != sortSize(bytes)) return 5;
  if (load<u32>(s + S_PHASE) > 2) return 3;
  if (load<u32>(s + S_CURSOR) >= keys) return 4;
  return 0;
}

export function sortInit(ctx: usize, keys: u32, seed: u32): void {
  const s = stateOf(ctx);
  store<u64>(s + S_RANDOM, <u64>seed * 0x9e3779b97f4a7c15 + 1);
  store<u32>(s + S_ITER, 0);
  store<u32>(s + S_PHASE, 0);
  store<u32>(s + S_CURSOR, 0);
  store<u32>(s + S_KEYS, keys);
  const k = keysAt(ctx);
  // NPB IS draws keys as a sum of uniforms: roughly normal around the middle.
  for (let i: u32 = 0; i < keys; i++) {
    const sum = (nextRandom(s) >> 10) + (nextRandom(s) >> 10) + (nextRandom(s) >> 10) + (nextRandom(s) >> 10);
    store<u32>(k + (<usize>i << 2), sum % MAX_KEY);
  }
  memory.fill(positionsAt(ctx, keys), 0, BUCKETS * 4);
  markWritten(ctx, k, (<usize>keys << 3) + BUCKETS * 4);
}

export function sortStep(ctx: usize): u32 {
  const s = stateOf(ctx);
  const keys = load<u32>(s + S_KEYS);
  const phase = load<u32>(s + S_PHASE);
  const cursor = load<u32>(s + S_CURSOR);
  const k = keysAt(ctx);
  const out = outAt(ctx, keys);
  const positions = positionsAt(ctx, keys);
  const shift: u32 = 24 - 16;
  const end = min(keys, cursor + CHUNK);
  need(ctx, positions, BUCKETS * 4);
  if (phase == 0) need(ctx, k, <usize>keys << 2); // a new iteration changes two keys anywhere
  else if (phase == 2) {
    need(ctx, k + (<usize>cursor << 2), <usize>(end - cursor) << 2);
    need(ctx, out, <usize>keys << 2);
  }
  if (phase == 0) {
    if (cursor == 0) {
      // A new iteration: two keys change (as in NPB IS), and the counts start again.
      const iter = load<u32>(s + S_ITER);
      store<u32>(k + (<usize>(iter % keys) << 2), iter % MAX_KEY);
      store<u32>(k + (<usize>((iter + keys / 2) % keys) << 2), (MAX_KEY - 1 - iter) % MAX_KEY);
      markWritten(ctx, k + (<usize>(iter % keys) << 2), 4);
      markWritten(ctx, k + (<usize>((iter + keys / 2) % keys) << 2), 4);
      memory.fill(positions, 0, BUCKETS * 4);
    }
    for (let i = cursor; i < end; i++) {
      const bucket = positions + (<usize>(load<u32>(k + (<usize>i << 2)) >> shift) << 2);
      store<u32>(bucket, load<u32>(bucket) + 1);
    }
    markWritten(ctx, positions, BUCKETS * 4);
    store<u32>(s + S_CURSOR, end);
    if (end == keys) {
      store<u32>(s + S_PHASE, 1);
      store<u32>(s + S_CURSOR, 0);
    }
  } else if (phase == 1) {
    let total: u32 = 0;
    for (let b: u32 = 0; b < BUCKETS; b++) {
      const at = positions + (<usize>b << 2);
      const count = load<u32>(at);
      store<u32>(at, total);
      total += count;
    }
    markWritten(ctx, positions, BUCKETS * 4);
    store<u32>(s + S_PHASE, 2);
  } else {
    for (let i = cursor; i < end; i++) {
      const key = load<u32>(k + (<usize>i << 2));
      const bucket = positions + (<usize>(key >> shift) << 2);
      const at = load<u32>(bucket);
      store<u32>(bucket, at + 1);
      store<u32>(out + (<usize>at << 2), key);
    }
    // The scatter wrote all over the output: mark it all, after the writes.
    markWritten(ctx, out, <usize>keys << 2);
    markWritten(ctx, positions, BUCKETS * 4);
    store<u32>(s + S_CURSOR, end);
    if (end == keys) {
      store<u32>(s + S_PHASE, 0);
      store<u32>(s + S_CURSOR, 0);
      store<u32>(s + S_ITER, load<u32>(s + S_ITER) + 1);
    }
  }
  return load<u32>(s + S_ITER);
}
