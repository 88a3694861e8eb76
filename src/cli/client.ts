import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { CliError } from './errors.js';

/** The body of an error response. */
interface ApiErrorBody {
  code?: string;
  message?: string;
}

/** A thin HTTP client of the Modelgate API. */
export class ApiClient {
  constructor(
    readonly server: string,
    private readonly token: string,
  ) {}

  private fail(status: number, body: ApiErrorBody | undefined): never {
    const what = body?.code ? `${body.code}: ${body.message ?? ''}` : `HTTP ${status}`;
    throw new CliError(what, status >= 400 && status < 500 ? 1 : 2);
  }

  /** Sends a JSON request; returns the parsed body (undefined for 204). */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach ${this.server}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
        2,
      );
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) this.fail(res.status, parsed as ApiErrorBody | undefined);
    return parsed as T;
  }

  /**
   * Streams a file to POST /blobs, hashing it on the way so the server's digest can be
   * checked against ours. `onBytes` reports progress.
   */
  uploadFile(
    path: string,
    size: number,
    onBytes: (n: number) => void,
  ): Promise<{ digest: string; size: number }> {
    const url = new URL(`${this.server}/api/v1/blobs`);
    const mod = url.protocol === 'https:' ? https : http;
    const hash = createHash('sha256');
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.token}`,
          'content-type': 'application/octet-stream',
          'content-length': String(size),
        },
      });
      req.on('error', (e) => reject(new CliError(`upload of ${path} failed: ${e.message}`, 2)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: { digest?: string; size?: number } & ApiErrorBody = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            // fall through with an empty body
          }
          const status = res.statusCode ?? 0;
          if (status >= 400) {
            try {
              this.fail(status, body);
            } catch (e) {
              reject(e);
            }
            return;
          }
          const ours = `sha256:${hash.digest('hex')}`;
          if (body.digest !== ours) {
            reject(
              new CliError(
                `upload of ${path}: server computed ${body.digest}, we computed ${ours}`,
                2,
              ),
            );
            return;
          }
          resolve({ digest: ours, size: body.size ?? size });
        });
      });
      const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
      file.on('error', (e) => {
        req.destroy();
        reject(new CliError(`cannot read ${path}: ${e.message}`, 2));
      });
      file.on('data', (chunk) => {
        hash.update(chunk as Buffer);
        onBytes(chunk.length);
        if (!req.write(chunk)) {
          file.pause();
          req.once('drain', () => file.resume());
        }
      });
      file.on('end', () => req.end());
    });
  }
}
