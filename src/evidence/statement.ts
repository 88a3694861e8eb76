import { DsseError } from './dsse.js';

/** The in-toto Statement v1 type. */
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';

/** An in-toto ResourceDescriptor: what a statement is about, matched by digest. */
export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest: Record<string, string>;
  annotations?: Record<string, unknown>;
}

/** An in-toto Statement v1 (in-toto/attestation spec/v1/statement.md). */
export interface Statement<P = unknown> {
  _type: typeof STATEMENT_TYPE;
  subject: ResourceDescriptor[];
  predicateType: string;
  predicate: P;
}

/** A subject for a Modelgate version: its name and its `sha256:<hex>` digest. */
export function versionSubject(model: string, version: number, digest: string): ResourceDescriptor {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new DsseError(`${digest} is not a sha256 digest`);
  return { name: `${model}@${version}`, digest: { sha256: m[1]! } };
}

/** A statement about one subject. */
export function statement<P>(
  subject: ResourceDescriptor,
  predicateType: string,
  predicate: P,
): Statement<P> {
  return { _type: STATEMENT_TYPE, subject: [subject], predicateType, predicate };
}

const HEX = /^[0-9a-f]+$/;

/**
 * Parses verified payload bytes as a Statement v1: the type, at least one subject each with a
 * digest of lowercase hex values, a predicate type. Unknown fields are kept (consumers ignore
 * them). Throws DsseError naming what is wrong.
 */
export function parseStatement(payload: Buffer): Statement {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new DsseError('the payload is not JSON');
  }
  const s = v as Partial<Statement>;
  if (typeof s !== 'object' || s === null || s._type !== STATEMENT_TYPE)
    throw new DsseError(
      `the payload is not an in-toto Statement v1 (_type ${JSON.stringify(s?._type)})`,
    );
  if (!Array.isArray(s.subject) || s.subject.length === 0)
    throw new DsseError('the statement has no subject');
  s.subject.forEach((sub, i) => {
    const d = (sub as ResourceDescriptor)?.digest;
    if (typeof d !== 'object' || d === null || Object.keys(d).length === 0)
      throw new DsseError(`subject ${i} has no digest`);
    for (const [alg, hex] of Object.entries(d))
      if (typeof hex !== 'string' || !HEX.test(hex))
        throw new DsseError(`subject ${i} digest ${alg} is not lowercase hex`);
  });
  if (typeof s.predicateType !== 'string' || s.predicateType === '')
    throw new DsseError('the statement has no predicateType');
  return s as Statement;
}
