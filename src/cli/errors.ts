/** An error that ends the CLI with a one-line reason and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    /** 1: refused by the server; 2: usage, connection or server failure. */
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
