import { open } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { Worker } from 'node:worker_threads';
import { CliError } from './errors.js';

const SEND_CHUNK = 1024 * 1024;
const SEND_BUFFERS = 4;

/**
 * Writes a file into a request from a small pool of reused buffers: a buffer goes back to the
 * pool once the socket has taken its bytes. Fresh buffers per chunk cost a page fault per
 * 4 KiB, which on a VM is more than sending the bytes.
 */
async function sendFile(
  req: http.ClientRequest,
  path: string,
  size: number,
  onBytes: (n: number) => void,
): Promise<void> {
  const fh = await open(path, 'r');
  try {
    const free: Buffer[] = Array.from({ length: SEND_BUFFERS }, () =>
      Buffer.allocUnsafe(SEND_CHUNK),
    );
    let waiting: (() => void) | undefined;
    const release = (b: Buffer) => {
      free.push(b);
      waiting?.();
      waiting = undefined;
    };
    let pos = 0;
    while (pos < size) {
      let buf = free.pop();
      while (!buf) {
        await new Promise<void>((r) => {
          waiting = r;
        });
        buf = free.pop();
      }
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead === 0) throw new CliError(`${path} shrank while it was being pushed`, 2);
      pos += bytesRead;
      onBytes(bytesRead);
      const b = buf;
      req.write(b.subarray(0, bytesRead), () => release(b));
    }
    req.end();
  } finally {
    await fh.close();
  }
}

/** SHA-256 of a file computed on a worker thread. */
function hashFileInWorker(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./hash-worker.js', import.meta.url), { workerData: path });
    w.once('message', (d: string) => resolve(d));
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`hash worker exited with ${code}`));
    });
  });
}

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
    /** Longest wait for an answer; undefined: no limit (uploads can take hours). */
    private readonly timeoutMs?: number,
  ) {}

  private fail(status: number, body: ApiErrorBody | undefined): never {
    const what = body?.code ? `${body.code}: ${body.message ?? ''}` : `HTTP ${status}`;
    throw new CliError(what, status >= 400 && status < 500 ? 1 : 2);
  }

  private async fetch(method: string, path: string, body: unknown): Promise<Response> {
    try {
      return await fetch(`${this.server}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        // A server that accepts the connection and never answers must not stall a loop forever.
        ...(this.timeoutMs !== undefined && { signal: AbortSignal.timeout(this.timeoutMs) }),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach ${this.server}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
        2,
      );
    }
  }

  /** Sends a request; returns the response body as text, after turning errors into CliErrors. */
  private async send(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; text: string }> {
    const res = await this.fetch(method, path, body);
    const text = await res.text();
    if (!res.ok) {
      let parsed: ApiErrorBody | undefined;
      try {
        parsed = text ? (JSON.parse(text) as ApiErrorBody) : undefined;
      } catch {
        parsed = undefined;
      }
      this.fail(res.status, parsed);
    }
    return { status: res.status, text };
  }

  /** Sends a JSON request; returns the parsed body (undefined for 204). */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await this.send(method, path, body);
    if (status === 204 || !text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`${method} ${path}: the server's answer is not JSON`, 2);
    }
  }

  /**
   * Sends a JSON request and returns the status with the parsed body, error answers included,
   * for commands whose exit code depends on which answer came (a promotion: moved, pending or
   * denied). Connection failures still throw.
   */
  async attempt<T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await this.fetch(method, path, body);
    const text = await res.text();
    try {
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    } catch {
      throw new CliError(
        `${method} ${path}: the server's answer is not JSON (HTTP ${res.status})`,
        2,
      );
    }
  }

  /** GETs a text resource (a signed note, a key). */
  async text(path: string): Promise<string> {
    return (await this.send('GET', path)).text;
  }

  /**
   * Streams a file to POST /blobs while a worker thread hashes the same file, so the
   * server's digest is checked against ours end to end. `onBytes` reports progress.
   */
  uploadFile(
    path: string,
    size: number,
    onBytes: (n: number) => void,
    verify = true,
  ): Promise<{ digest: string; size: number }> {
    const url = new URL(`${this.server}/api/v1/blobs`);
    const mod = url.protocol === 'https:' ? https : http;
    // Without verification the server's digest is taken as it is (TCP or TLS still guard the
    // transfer); it saves a second SHA-256 pass, which on a small machine competes with the
    // server's own for the same cores.
    const ours = verify ? hashFileInWorker(path) : undefined;
    ours?.catch(() => {});
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
          if (!ours) {
            resolve({ digest: body.digest ?? '', size: body.size ?? size });
            return;
          }
          ours.then(
            (digest) => {
              if (body.digest !== digest) {
                reject(
                  new CliError(
                    `upload of ${path}: server computed ${body.digest}, we computed ${digest}`,
                    2,
                  ),
                );
              } else resolve({ digest, size: body.size ?? size });
            },
            (e: Error) => reject(new CliError(`cannot hash ${path}: ${e.message}`, 2)),
          );
        });
      });
      sendFile(req, path, size, onBytes).catch((e: Error) => {
        req.destroy();
        reject(e instanceof CliError ? e : new CliError(`cannot read ${path}: ${e.message}`, 2));
      });
    });
  }
}
