export * from "./constants.js";
export * from "./errors.js";
export * from "./frame.js";
export * from "./messages.js";
export * from "./auth.js";
export * from "./pages.js";
