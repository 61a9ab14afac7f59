// The pagewire WASM core: pure loops over linear memory, one call per batch of pages. These are
// the exports src/core/ uses; assembly/debug.ts adds the ones only tests call.
export { bitmapSync, bitmapScan, bitmapCount, bitmapFilter, bitmapMarkRange, bitmapTakeRange, bitmapMarkList, bitmapClear, bitmapMarkChunks } from "./bitmap";
export { zeroCountRange, zeroFreePages } from "./zero";
export { xxh64, pageHashSum, pageHashSumRange, pageHashTrack } from "./hash";
export { digestChunks, sumU64, hashBytes } from "./page-digest";
export { lz4Compress } from "./lz4/compress";
export { lz4Decompress } from "./lz4/decompress";
export { encodeBatch, decodeBatch } from "./batch";
