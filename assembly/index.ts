// The pagewire WASM core: pure loops over linear memory, one call per batch of pages.
export { bitmapSync, bitmapScan, bitmapScanNext, bitmapCount, bitmapOr, bitmapAnd, bitmapAndNot, bitmapFilter, bitmapMarkRange, bitmapClearRange, bitmapTakeRange, bitmapMarkList, bitmapClear } from "./bitmap";
export { zeroClassify, zeroCountRange, zeroFreePages } from "./zero";
export { xxh64, hashPages, pageHashSum, pageHashSumRange } from "./hash";
export { xxh3, xxh3Chunks } from "./xxh3";
export { lz4Compress } from "./lz4/compress";
export { lz4Decompress } from "./lz4/decompress";
export { deltaEncode, deltaDecode } from "./delta";
export { encodeBatch, decodeBatch } from "./batch";
