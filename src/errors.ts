/** Every error pagewire raises: `code` is stable for programs to branch on, the message is for people. */
export class PagewireError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "PagewireError";
  }
}
