import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The SQLite database and the files SQLite keeps beside it. */
const DATABASE_FILES = ['modelgate.db', 'modelgate.db-wal', 'modelgate.db-shm'];

/**
 * Makes the data folder private to the server's user: the folder 0700 (it holds the signing
 * keys, the initial admin token and the blobs) and the SQLite files 0600 (they hold token and
 * password hashes). Creates the folder if needed; tightens a looser folder or file left by an
 * earlier version or by hand. Returns what it tightened, for the log.
 */
export function secureDataFolder(dataDir: string): string[] {
  const tightened: string[] = [];
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const tighten = (path: string, mode: number) => {
    let current: number;
    try {
      current = statSync(path).mode & 0o777;
    } catch {
      return;
    }
    if ((current & ~mode) === 0) return;
    chmodSync(path, mode);
    tightened.push(`${path}: mode ${current.toString(8)} -> ${mode.toString(8)}`);
  };
  tighten(dataDir, 0o700);
  for (const f of DATABASE_FILES) tighten(join(dataDir, f), 0o600);
  return tightened;
}
