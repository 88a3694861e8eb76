import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalize } from './canonical-json.js';
import { formatCheckpoint } from './checkpoint.js';
import { leafHash, MemoryTree } from './merkle.js';
import {
  COSIGNATURE_V1,
  generateSignerKey,
  type NoteSigner,
  noteSigner,
  signNote,
  verifierKeyOf,
} from './signed-note.js';
import { formatReport, type LogLeaf, type VerifyInput, verifyLog } from './verify.js';

const ORIGIN = 'modelgate.example/audit/v1';
const LOG_SKEY = generateSignerKey(ORIGIN);
const LOG_VKEY = verifierKeyOf(LOG_SKEY);
const LOG = noteSigner(LOG_SKEY);

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function event(seq: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    seq,
    time: new Date(Date.UTC(2026, 0, 1) + seq * 1000).toISOString(),
    actor: seq % 2 ? 'alice' : 'svc-ci',
    credential: `tok_${seq % 3}`,
    action: 'version.register',
    subject: `model/fraud-detector@${seq + 1}`,
    digest: `sha256:${sha256(`content ${seq}`)}`,
    ...extra,
  };
}

const bytesOf = (value: unknown) => Buffer.from(canonicalize(value));

/** Signs a checkpoint of the first `size` leaves of `leaves` (or an explicit root) with the log key. */
function checkpointNote(
  leaves: readonly Buffer[],
  size: number,
  opts: { signer?: NoteSigner; origin?: string; root?: Buffer } = {},
): string {
  const tree = new MemoryTree();
  for (const l of leaves.slice(0, size)) tree.append(l);
  const text = formatCheckpoint({
    origin: opts.origin ?? ORIGIN,
    size,
    root: opts.root ?? tree.root(),
  });
  return signNote(text, [opts.signer ?? LOG]);
}

interface Log {
  bytes: Buffer[];
  checkpoints: string[];
  input(
    over?: Partial<Omit<VerifyInput, 'leaves'>> & { leaves?: LogLeaf[] },
  ): VerifyInput & { leaves: LogLeaf[] };
}

/** A clean log of `n` events with checkpoints at the given sizes. */
function buildLog(n = 50, sizes = [10, 20, 30, 40, 50]): Log {
  const bytes = Array.from({ length: n }, (_, i) => bytesOf(event(i)));
  const checkpoints = sizes.map((s) => checkpointNote(bytes, s));
  return {
    bytes,
    checkpoints,
    input(over = {}) {
      return {
        leaves: bytes.map((b, index) => ({ index, bytes: b })),
        checkpoints,
        logKey: LOG_VKEY,
        ...over,
      };
    },
  };
}

const leavesOf = (bytes: readonly Buffer[]): LogLeaf[] =>
  bytes.map((b, index) => ({ index, bytes: b }));

describe('verifyLog', () => {
  it('passes a clean log and reports what it checked', () => {
    const log = buildLog();
    const report = verifyLog(log.input());
    expect(report.ok).toBe(true);
    expect(report.violation).toBeUndefined();
    expect(report.checked).toEqual({ events: 50, checkpoints: 5, latestSize: 50 });
    expect(report.warnings).toEqual([]);
    expect(report.origin).toBe(ORIGIN);
    expect(report.latestCheckpoint).toBe(log.checkpoints[4]);
    expect(report.checks.map((c) => [c.name, c.status])).toEqual([
      ['events', 'ok'],
      ['signatures', 'ok'],
      ['order', 'ok'],
      ['split-view', 'ok'],
      ['roots', 'ok'],
      ['consistency', 'ok'],
      ['since', 'skip'],
      ['witnesses', 'skip'],
      ['coverage', 'ok'],
    ]);
    const text = formatReport(report);
    expect(text).not.toMatch(/FAIL/);
    expect(text.split('\n').at(-1)).toBe(
      'ok: 50 events and 5 checkpoints verified; latest checkpoint size 50',
    );
  });

  it('passes with correct stored leaf hashes, and accepts extra event fields', () => {
    const bytes = Array.from({ length: 12 }, (_, i) => bytesOf(event(i, { model: 'm', n: i })));
    const report = verifyLog({
      leaves: bytes.map((b, index) => ({ index, bytes: b, storedLeafHash: leafHash(b) })),
      checkpoints: [checkpointNote(bytes, 5), checkpointNote(bytes, 12)],
      logKey: LOG_VKEY,
    });
    expect(report.ok, formatReport(report)).toBe(true);
    expect(report.checks[0]?.detail).toMatch(/stored leaf hashes match/);
  });

  it('passes an empty log, with or without an empty checkpoint', () => {
    expect(verifyLog({ leaves: [], checkpoints: [], logKey: LOG_VKEY }).ok).toBe(true);
    const report = verifyLog({
      leaves: [],
      checkpoints: [checkpointNote([], 0)],
      logKey: LOG_VKEY,
    });
    expect(report.ok).toBe(true);
    expect(report.checked).toEqual({ events: 0, checkpoints: 1, latestSize: 0 });
  });

  describe('detects tampering with events', () => {
    it('one changed byte that keeps valid JSON, located by the checkpoints around it', () => {
      const log = buildLog();
      const tampered = [...log.bytes];
      tampered[17] = Buffer.from(log.bytes[17]!.toString().replace('alice', 'alicf'));
      const report = verifyLog(log.input({ leaves: leavesOf(tampered) }));
      expect(report.ok).toBe(false);
      expect(report.violation).toMatchObject({ kind: 'root-mismatch', checkpointSize: 20 });
      expect(report.violation?.message).toMatch(
        /^checkpoint 20 is signed for root \S+ but the events give root \S+: an event in 10-19 was changed/,
      );
      expect(report.checked.events).toBe(50);
    });

    it('one changed byte against the stored leaf hash, naming the event', () => {
      const log = buildLog();
      const leaves = log.bytes.map((b, index) => ({
        index,
        bytes: b,
        storedLeafHash: leafHash(b),
      }));
      const bytes = Buffer.from(log.bytes[17]!);
      const at = bytes.indexOf('alice') + 4;
      bytes[at] = bytes[at]! ^ 0x01;
      leaves[17] = { ...leaves[17]!, bytes };
      const report = verifyLog(log.input({ leaves }));
      expect(report.violation).toEqual({
        kind: 'leaf-hash-mismatch',
        index: 17,
        message: 'event 17: stored bytes do not hash to the stored leaf hash',
      });
      expect(report.checked.events).toBe(17);
    });

    it('one changed byte that breaks the JSON', () => {
      const log = buildLog();
      const tampered = [...log.bytes];
      const bytes = Buffer.from(log.bytes[17]!);
      bytes[0] = 0x5b; // '{' -> '['
      tampered[17] = bytes;
      const report = verifyLog(log.input({ leaves: leavesOf(tampered) }));
      expect(report.violation).toMatchObject({ kind: 'malformed-event', index: 17 });
      expect(report.violation?.message).toMatch(/^event 17 is not valid JSON/);
    });

    it('a deleted event, when the store keeps the indexes', () => {
      const log = buildLog();
      const leaves = log.input().leaves.filter((l) => l.index !== 17);
      const report = verifyLog(log.input({ leaves }));
      expect(report.violation).toEqual({
        kind: 'missing-event',
        index: 17,
        message: 'event 17 is missing: the log jumps from 16 to 18',
      });
    });

    it('a deleted event, when the rest are renumbered', () => {
      const log = buildLog();
      const report = verifyLog(
        log.input({ leaves: leavesOf(log.bytes.filter((_, i) => i !== 17)) }),
      );
      expect(report.violation).toMatchObject({ kind: 'out-of-order', index: 17 });
      expect(report.violation?.message).toBe('event 17 says seq 18: events are out of order');
    });

    it('deleted leading events and a gap of several', () => {
      const log = buildLog();
      const leaves = log.input().leaves;
      expect(verifyLog(log.input({ leaves: leaves.slice(1) })).violation?.message).toBe(
        'event 0 is missing: the log starts at 1',
      );
      const gap = leaves.filter((l) => l.index < 17 || l.index > 19);
      expect(verifyLog(log.input({ leaves: gap })).violation?.message).toBe(
        'events 17-19 are missing: the log jumps from 16 to 20',
      );
    });

    it('a repeated index', () => {
      const log = buildLog();
      const leaves = [...log.input().leaves];
      leaves.splice(6, 0, leaves[5]!);
      const report = verifyLog(log.input({ leaves }));
      expect(report.violation).toMatchObject({ kind: 'duplicate-event', index: 5 });
    });

    it('two swapped events', () => {
      const log = buildLog();
      const swapped = [...log.bytes];
      [swapped[5], swapped[6]] = [swapped[6]!, swapped[5]!];
      const report = verifyLog(log.input({ leaves: leavesOf(swapped) }));
      expect(report.violation).toEqual({
        kind: 'out-of-order',
        index: 5,
        message: 'event 5 says seq 6: events are out of order',
      });
    });

    it('two swapped events whose seq fields were rewritten to match', () => {
      const log = buildLog();
      const swapped = [...log.bytes];
      swapped[5] = bytesOf({ ...event(6), seq: 5 });
      swapped[6] = bytesOf({ ...event(5), seq: 6 });
      const report = verifyLog(log.input({ leaves: leavesOf(swapped) }));
      expect(report.violation).toMatchObject({ kind: 'root-mismatch', checkpointSize: 10 });
      expect(report.violation?.message).toMatch(/an event in 0-9 was changed/);
    });

    it('an event that is JSON-equal but not canonical', () => {
      const log = buildLog();
      const tampered = [...log.bytes];
      // Same value, keys in insertion order and spaces: JSON.parse cannot tell them apart.
      tampered[17] = Buffer.from(JSON.stringify(event(17), null, 1));
      expect(JSON.parse(tampered[17].toString())).toEqual(JSON.parse(log.bytes[17]!.toString()));
      const report = verifyLog(log.input({ leaves: leavesOf(tampered) }));
      expect(report.violation).toMatchObject({ kind: 'non-canonical-event', index: 17 });
      expect(report.violation?.message).toMatch(/^event 17 is not in RFC 8785 canonical JSON form/);

      // A duplicate key parses to the same object too.
      const dup = log.bytes[17]!.toString().replace('{', '{"actor":"mallory",');
      tampered[17] = Buffer.from(dup);
      expect(verifyLog(log.input({ leaves: leavesOf(tampered) })).violation?.kind).toBe(
        'non-canonical-event',
      );
    });

    it('an event missing a required field or with a wrong type', () => {
      const log = buildLog();
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ ...event(3), actor: undefined }, /^event 3 has no actor string$/],
        [{ ...event(3), credential: 7 }, /^event 3 has no credential string$/],
        [{ ...event(3), seq: '3' }, /^event 3 has no seq/],
        [{ ...event(3), time: 'yesterday' }, /^event 3 has time "yesterday", not ISO-8601$/],
        [{ ...event(3), digest: 'md5:00' }, /^event 3 has digest "md5:00"/],
      ];
      for (const [value, message] of cases) {
        const tampered = [...log.bytes];
        tampered[3] = bytesOf(JSON.parse(JSON.stringify(value)));
        const report = verifyLog(log.input({ leaves: leavesOf(tampered) }));
        expect(report.violation?.kind).toBe('missing-field');
        expect(report.violation?.message).toMatch(message);
      }
      const tampered = [...log.bytes];
      tampered[3] = Buffer.from('[1,2]');
      expect(verifyLog(log.input({ leaves: leavesOf(tampered) })).violation?.message).toBe(
        'event 3 is not a JSON object',
      );
    });

    it('the log truncated below the latest checkpoint', () => {
      const log = buildLog();
      const report = verifyLog(log.input({ leaves: leavesOf(log.bytes.slice(0, 45)) }));
      expect(report.violation).toEqual({
        kind: 'truncated',
        checkpointSize: 50,
        message:
          'checkpoint 50 covers 50 events but the log holds only 45: events 45-49 are missing',
      });
    });
  });

  describe('detects tampering with checkpoints', () => {
    it('the latest checkpoint replaced with an older one', () => {
      const log = buildLog();
      const checkpoints = [...log.checkpoints.slice(0, 4), log.checkpoints[2]!];
      const report = verifyLog(log.input({ checkpoints }));
      expect(report.violation).toEqual({
        kind: 'sizes-decrease',
        checkpointSize: 30,
        message: 'checkpoint 30 is stored after checkpoint 40: checkpoint sizes went backwards',
      });
    });

    it('a different root signed with the real log key at an existing size (split view)', () => {
      const log = buildLog();
      const fork = [...log.bytes];
      fork[39] = bytesOf(event(39, { action: 'alias.move' }));
      const forged = checkpointNote(fork, 40);
      for (const checkpoints of [
        [...log.checkpoints.slice(0, 4), forged, log.checkpoints[4]!],
        [...log.checkpoints.slice(0, 3), forged, ...log.checkpoints.slice(3)],
      ]) {
        const report = verifyLog(log.input({ checkpoints }));
        expect(report.violation).toMatchObject({ kind: 'split-view', checkpointSize: 40 });
        expect(report.violation?.message).toMatch(/^two different roots signed for size 40: /);
      }
    });

    it('a checkpoint signed by another key, or with a broken signature', () => {
      const log = buildLog();
      const other = noteSigner(generateSignerKey(ORIGIN));
      const checkpoints = [...log.checkpoints];
      checkpoints[2] = checkpointNote(log.bytes, 30, { signer: other });
      let report = verifyLog(log.input({ checkpoints }));
      expect(report.violation).toMatchObject({ kind: 'bad-signature', checkpointSize: 30 });
      expect(report.violation?.message).toMatch(
        /^checkpoint #3 in stored order does not verify with the log key/,
      );
      // The signed text edited after signing: same key, so the signature itself fails.
      checkpoints[2] = log.checkpoints[2]!.replace('\n30\n', '\n31\n');
      report = verifyLog(log.input({ checkpoints }));
      expect(report.violation).toMatchObject({ kind: 'bad-signature', checkpointSize: 31 });
      expect(report.violation?.message).toMatch(/invalid signature/);
    });

    it('a checkpoint for another origin', () => {
      const log = buildLog();
      const checkpoints = [...log.checkpoints];
      checkpoints[1] = checkpointNote(log.bytes, 20, { origin: 'other.example/audit' });
      const report = verifyLog(log.input({ checkpoints }));
      expect(report.violation).toMatchObject({ kind: 'origin-mismatch', checkpointSize: 20 });
    });

    it('events but no checkpoint at all', () => {
      const log = buildLog();
      const report = verifyLog(log.input({ checkpoints: [] }));
      expect(report.violation).toEqual({
        kind: 'no-checkpoint',
        message: 'no signed checkpoint covers the log: 50 events and no checkpoint',
      });
    });

    it('warns, without failing, about events after the latest checkpoint', () => {
      const log = buildLog(50, [10, 20, 42]);
      const report = verifyLog(log.input());
      expect(report.ok).toBe(true);
      expect(report.checked.latestSize).toBe(42);
      expect(report.warnings).toEqual([
        '8 events after the latest checkpoint are not yet covered by a signed checkpoint',
      ]);
      expect(formatReport(report)).toMatch(/^warn +coverage/m);
    });
  });

  describe('since: a checkpoint saved earlier', () => {
    it('passes when the log extends it, or is it', () => {
      const log = buildLog();
      expect(verifyLog(log.input({ since: log.checkpoints[2] })).ok).toBe(true);
      expect(verifyLog(log.input({ since: log.checkpoints[4] })).ok).toBe(true);
      const report = verifyLog(log.input({ since: checkpointNote(log.bytes, 33) }));
      expect(report.ok).toBe(true);
      expect(report.checks.find((c) => c.name === 'since')?.detail).toBe(
        "the log's latest checkpoint 50 extends the saved checkpoint 33",
      );
    });

    it('detects a rollback', () => {
      const log = buildLog();
      const since = log.checkpoints[4]!;
      // The log was cut back to 40 and re-served with its old checkpoints.
      const report = verifyLog(
        log.input({
          leaves: leavesOf(log.bytes.slice(0, 40)),
          checkpoints: log.checkpoints.slice(0, 4),
          since,
        }),
      );
      expect(report.violation).toEqual({
        kind: 'rollback',
        checkpointSize: 50,
        message:
          "rollback: the log's latest checkpoint has size 40, smaller than the saved size 50",
      });
      const none = verifyLog({ leaves: [], checkpoints: [], logKey: LOG_VKEY, since });
      expect(none.violation?.kind).toBe('rollback');
    });

    it('detects a split view at the same size and at a smaller size', () => {
      const log = buildLog();
      const fork = [...log.bytes];
      fork[25] = bytesOf(event(25, { subject: 'model/other@1' }));
      const same = verifyLog(log.input({ since: checkpointNote(fork, 50) }));
      expect(same.violation).toMatchObject({ kind: 'split-view', checkpointSize: 50 });
      expect(same.violation?.message).toMatch(
        /^split view: the saved checkpoint and the log's latest both have size 50 but different roots/,
      );
      const smaller = verifyLog(log.input({ since: checkpointNote(fork, 30) }));
      expect(smaller.violation).toMatchObject({ kind: 'split-view', checkpointSize: 30 });
      expect(smaller.violation?.message).toMatch(
        /^split view: the saved checkpoint \(size 30, root \S+\) is not consistent with the log's latest checkpoint 50$/,
      );
    });

    it('refuses a saved checkpoint the log key did not sign', () => {
      const log = buildLog();
      const other = noteSigner(generateSignerKey(ORIGIN));
      const report = verifyLog(
        log.input({ since: checkpointNote(log.bytes, 30, { signer: other }) }),
      );
      expect(report.violation).toMatchObject({ kind: 'since-unverified', checkpointSize: 30 });
    });
  });

  describe('witnesses', () => {
    const witnessKey = (name: string) => generateSignerKey(name, COSIGNATURE_V1);
    const cosign = (note: string, skey: string, time: number) => {
      const text = note.slice(0, note.lastIndexOf('\n\n') + 1);
      const line = signNote(text, [noteSigner(skey, { now: () => time })]).slice(text.length + 1);
      return `${note}${line}`;
    };

    it('counts valid cosignatures on the latest checkpoint and warns about the missing', () => {
      const log = buildLog();
      const [w1, w2, w3] = ['w.example/1', 'w.example/2', 'w.example/3'].map(witnessKey);
      let latest = cosign(log.checkpoints[4]!, w1!, 1767225600);
      latest = cosign(latest, w2!, 1767225601);
      // A cosignature over an older checkpoint does not count for the latest one.
      const older = cosign(log.checkpoints[3]!, w3!, 1767225602);
      const report = verifyLog(
        log.input({
          checkpoints: [...log.checkpoints.slice(0, 3), older, latest],
          witnessKeys: [w1!, w2!, w3!].map(verifierKeyOf),
        }),
      );
      expect(report.ok, formatReport(report)).toBe(true);
      expect(report.witnessed).toEqual([
        { name: 'w.example/1', timestamp: 1767225600 },
        { name: 'w.example/2', timestamp: 1767225601 },
      ]);
      expect(report.warnings).toEqual(['checkpoint 50 has no cosignature by w.example/3']);
      expect(formatReport(report)).toMatch(
        /^warn +witnesses +checkpoint 50 cosigned by 2 of 3 witnesses \(missing: w\.example\/3\)$/m,
      );
    });

    it('reports a cosignature that does not verify as a warning, keeping the valid ones', () => {
      const log = buildLog();
      const [w1, w2] = ['w.example/1', 'w.example/2'].map(witnessKey);
      const good = cosign(log.checkpoints[4]!, w1!, 1767225600);
      // w2's cosignature over checkpoint 40's text, pasted under checkpoint 50.
      const stolen = cosign(log.checkpoints[3]!, w2!, 1767225600);
      const latest = `${good}${stolen.slice(stolen.lastIndexOf('\u2014 w.example/2'))}`;
      const report = verifyLog(
        log.input({
          checkpoints: [...log.checkpoints.slice(0, 4), latest],
          witnessKeys: [w1!, w2!].map(verifierKeyOf),
        }),
      );
      expect(report.ok).toBe(true);
      expect(report.witnessed.map((w) => w.name)).toEqual(['w.example/1']);
      expect(report.warnings).toEqual([
        'the cosignature by w.example/2 on checkpoint 50 does not verify',
      ]);
    });
  });

  it('prints a checklist with the violation last', () => {
    const log = buildLog();
    const report = verifyLog(log.input({ leaves: leavesOf(log.bytes.slice(0, 45)) }));
    const lines = formatReport(report).split('\n');
    expect(lines[0]).toMatch(/^ok +events +45 events, contiguous from 0/);
    expect(lines.find((l) => l.startsWith('FAIL  roots'))).toBeDefined();
    expect(lines.filter((l) => l.startsWith('skip'))).toHaveLength(4);
    expect(lines.at(-1)).toBe(
      'FAIL: checkpoint 50 covers 50 events but the log holds only 45: events 45-49 are missing',
    );
  });

  it('throws for a malformed log key: a usage error, not a finding', () => {
    expect(() => verifyLog({ leaves: [], checkpoints: [], logKey: 'not a key' })).toThrow(
      /malformed verifier key/,
    );
  });
});
