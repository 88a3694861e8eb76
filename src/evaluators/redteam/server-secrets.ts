import { ModelgateError } from '../../core/errors.js';
import { EgressPolicy } from './egress.js';

/**
 * A server-side secret and where it may go: the URL prefixes of the endpoints it may be sent
 * to and the header names it may be sent in. An evaluator names a secret; it never chooses
 * where the secret goes beyond what the operator bound it to.
 */
export interface ServerSecret {
  value: string;
  endpoints: EgressPolicy;
  /** Header names, compared without case. */
  headers: readonly string[];
}

/** Looks up a server-side secret by name (MODELGATE_SECRET_<NAME>, the server config file). */
export type SecretResolver = (name: string) => ServerSecret | undefined;

/** The environment variable that holds a secret: MODELGATE_SECRET_ + the name upper-cased. */
export function secretEnvName(name: string): string {
  return `MODELGATE_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** The header a secret goes in when its binding names none. */
export const DEFAULT_SECRET_HEADER = 'Authorization';

/** Builds a secret's binding, or throws naming what is wrong with it (at server start). */
export function bindSecret(
  where: string,
  value: string,
  endpoints: readonly string[],
  headers: readonly string[] = [DEFAULT_SECRET_HEADER],
): ServerSecret {
  if (endpoints.length === 0)
    throw new Error(
      `${where}: a secret must name the endpoint URL prefixes it may be sent to (MODELGATE_SECRET_<NAME>_ENDPOINTS, or "endpoints" in the server config file)`,
    );
  if (headers.length === 0 || headers.some((h) => !/^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/.test(h)))
    throw new Error(`${where}: the headers a secret may be sent in must be header names`);
  let policy: EgressPolicy;
  try {
    policy = new EgressPolicy(endpoints);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  return { value, endpoints: policy, headers: [...headers] };
}

/**
 * The value of secret `name` for header `header` of a request to `url`; refused when no such
 * secret exists or it is not bound to that header and endpoint, with one message for both, so
 * that a caller learns nothing about which secrets exist.
 */
export function secretFor(
  secrets: SecretResolver,
  name: string,
  header: string,
  url: string,
): string {
  const s = secrets(name);
  if (s?.headers.some((h) => h.toLowerCase() === header.toLowerCase()) && s.endpoints.covers(url))
    return s.value;
  throw new ModelgateError(
    'SECRET_NOT_FOUND',
    `no secret ${name} may be sent in ${header} to ${url} on this server: an operator binds each secret to the endpoints and headers it may go to (${secretEnvName(name)} with ${secretEnvName(name)}_ENDPOINTS and _HEADERS, or "secrets" in the server config file)`,
    { secret: name, header },
  );
}
