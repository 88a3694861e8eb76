import { type ColumnDefinitionBuilder, type Kysely, type Migration, Migrator, sql } from 'kysely';
import { layoutDigest } from '../core/manifest.js';
import type { Database, EngineCaps } from './database.js';

type AnyDb = Kysely<unknown>;

/** A migration written once for both engines; `caps` carries what differs. */
interface PortableMigration {
  up(db: AnyDb, caps: EngineCaps): Promise<void>;
}

const IMMUTABLE_VERSION_COLUMNS = [
  'model_id',
  'number',
  'digest',
  'total_size',
  'file_count',
  'source_uri',
  'author',
  'created_credential',
  'card_markdown',
  'card_fields',
  'created_at',
];

const m0001: PortableMigration = {
  async up(db, caps) {
    const id = caps.serialType;
    const pk = (c: ColumnDefinitionBuilder) =>
      caps.engine === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey();
    await db.schema
      .createTable('identities')
      .addColumn('id', id, pk)
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('identity_id', 'integer', (c) => c.notNull().references('identities.id'))
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .addColumn('last_used_from', 'text')
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema
      .createTable('models')
      .addColumn('id', id, pk)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('owner_team', 'text', (c) => c.notNull())
      .addColumn('risk_tier', 'text', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('intended_use', 'text', (c) => c.notNull())
      .addColumn('tags', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_credential', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('versions')
      .addColumn('id', id, pk)
      .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id'))
      .addColumn('number', 'integer', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('total_size', 'bigint', (c) => c.notNull())
      .addColumn('file_count', 'integer', (c) => c.notNull())
      .addColumn('source_uri', 'text')
      .addColumn('author', 'text', (c) => c.notNull())
      .addColumn('created_credential', 'text', (c) => c.notNull())
      .addColumn('card_markdown', 'text', (c) => c.notNull())
      .addColumn('card_fields', 'text', (c) => c.notNull())
      .addColumn('tags', 'text', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addUniqueConstraint('versions_model_number', ['model_id', 'number'])
      .execute();
    await db.schema.createIndex('versions_digest').on('versions').column('digest').execute();
    await db.schema
      .createTable('version_files')
      .addColumn('version_id', 'integer', (c) => c.notNull().references('versions.id'))
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('version_files_pk', ['version_id', 'path'])
      .execute();
    await db.schema
      .createTable('aliases')
      .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version_id', 'integer', (c) => c.notNull().references('versions.id'))
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('aliases_pk', ['model_id', 'name'])
      .execute();
    await db.schema
      .createTable('alias_events')
      .addColumn('id', id, pk)
      .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id'))
      .addColumn('alias', 'text', (c) => c.notNull())
      .addColumn('from_version', 'integer')
      .addColumn('to_version', 'integer')
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('credential_id', 'text', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('alias_events_lookup')
      .on('alias_events')
      .columns(['model_id', 'alias', 'at'])
      .execute();
    await db.schema
      .createTable('datasets')
      .addColumn('id', id, pk)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('uri', 'text', (c) => c.notNull())
      .addColumn('digest', 'text')
      .addColumn('licence', 'text')
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('lineage_edges')
      .addColumn('id', id, pk)
      .addColumn('version_id', 'integer', (c) => c.notNull().references('versions.id'))
      .addColumn('relation', 'text', (c) => c.notNull())
      .addColumn('target_kind', 'text', (c) => c.notNull())
      .addColumn('target_dataset_id', 'integer', (c) => c.references('datasets.id'))
      .addColumn('target_version_id', 'integer', (c) => c.references('versions.id'))
      .addColumn('target_uri', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('lineage_from').on('lineage_edges').column('version_id').execute();
    await db.schema
      .createIndex('lineage_to_dataset')
      .on('lineage_edges')
      .column('target_dataset_id')
      .execute();
    await db.schema
      .createIndex('lineage_to_version')
      .on('lineage_edges')
      .column('target_version_id')
      .execute();

    // Immutability is enforced by the database too, so that no code path, present or future,
    // can change what a registered version is. Tags, description and updated_* stay editable.
    const cols = IMMUTABLE_VERSION_COLUMNS.join(', ');
    if (caps.engine === 'sqlite') {
      await sql
        .raw(`CREATE TRIGGER versions_immutable BEFORE UPDATE OF ${cols} ON versions
              BEGIN SELECT RAISE(ABORT, 'VERSION_IMMUTABLE'); END`)
        .execute(db);
      await sql
        .raw(`CREATE TRIGGER versions_no_delete BEFORE DELETE ON versions
              BEGIN SELECT RAISE(ABORT, 'VERSION_IMMUTABLE'); END`)
        .execute(db);
      await sql
        .raw(`CREATE TRIGGER version_files_no_update BEFORE UPDATE ON version_files
              BEGIN SELECT RAISE(ABORT, 'VERSION_IMMUTABLE'); END`)
        .execute(db);
      await sql
        .raw(`CREATE TRIGGER version_files_no_delete BEFORE DELETE ON version_files
              BEGIN SELECT RAISE(ABORT, 'VERSION_IMMUTABLE'); END`)
        .execute(db);
    } else {
      await sql
        .raw(`CREATE FUNCTION modelgate_refuse_version_change() RETURNS trigger
              LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'VERSION_IMMUTABLE'; END $$`)
        .execute(db);
      await sql
        .raw(`CREATE TRIGGER versions_immutable BEFORE UPDATE OF ${cols} OR DELETE ON versions
              FOR EACH ROW EXECUTE FUNCTION modelgate_refuse_version_change()`)
        .execute(db);
      await sql
        .raw(`CREATE TRIGGER version_files_immutable BEFORE UPDATE OR DELETE ON version_files
              FOR EACH ROW EXECUTE FUNCTION modelgate_refuse_version_change()`)
        .execute(db);
    }
  },
};

const m0002: PortableMigration = {
  async up(db, caps) {
    const pk = (c: ColumnDefinitionBuilder) =>
      caps.engine === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey();
    await db.schema
      .createTable('evaluations')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('version_id', 'integer', (c) => c.notNull().references('versions.id'))
      .addColumn('evaluator_id', 'text', (c) => c.notNull())
      .addColumn('evaluator_version', 'text', (c) => c.notNull())
      .addColumn('config', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('requested_by', 'text', (c) => c.notNull())
      .addColumn('credential_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('progress', 'real', (c) => c.notNull())
      .addColumn('metrics', 'text', (c) => c.notNull())
      .addColumn('error', 'text')
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('lease_owner', 'text')
      .addColumn('lease_expires_at', 'text')
      .execute();
    await db.schema
      .createIndex('evaluations_version')
      .on('evaluations')
      .column('version_id')
      .execute();
    await db.schema
      .createIndex('evaluations_status')
      .on('evaluations')
      .columns(['status', 'created_at'])
      .execute();
    await db.schema
      .createTable('findings')
      .addColumn('id', caps.serialType, pk)
      .addColumn('evaluation_id', 'text', (c) => c.notNull().references('evaluations.id'))
      .addColumn('version_id', 'integer', (c) => c.notNull().references('versions.id'))
      .addColumn('rule_id', 'text', (c) => c.notNull())
      .addColumn('severity', 'text', (c) => c.notNull())
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('file', 'text', (c) => c.notNull())
      .addColumn('member', 'text')
      .addColumn('byte_offset', 'bigint')
      .addColumn('evidence', 'text', (c) => c.notNull())
      .addColumn('refs', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('findings_version')
      .on('findings')
      .columns(['version_id', 'severity'])
      .execute();
    await db.schema
      .createIndex('findings_evaluation')
      .on('findings')
      .column('evaluation_id')
      .execute();
  },
};

const m0003: PortableMigration = {
  async up(db) {
    for (const [table, column] of [
      ['identity_roles', 'role'],
      ['team_members', 'team'],
    ] as const) {
      await db.schema
        .createTable(table)
        .addColumn('identity_id', 'integer', (c) => c.notNull().references('identities.id'))
        .addColumn(column, 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint(`${table}_pk`, ['identity_id', column])
        .execute();
    }
    await db.schema.alterTable('tokens').addColumn('expires_at', 'text').execute();
    await db.schema.alterTable('tokens').addColumn('rotated_from', 'text').execute();
    // A JSON list of the actions the token may be used for; null: whatever its identity may do.
    await db.schema.alterTable('tokens').addColumn('scopes', 'text').execute();
    // Service accounts: the person answerable for one, and what it is for.
    await db.schema.alterTable('identities').addColumn('owner', 'text').execute();
    await db.schema.alterTable('identities').addColumn('purpose', 'text').execute();
    // Before roles existed every identity could do everything, production aliases included:
    // they keep that as admins and approvers.
    for (const role of ['admin', 'approver'])
      await sql`INSERT INTO identity_roles (identity_id, role) SELECT id, ${role} FROM identities`.execute(
        db,
      );
  },
};

const m0004: PortableMigration = {
  async up(db) {
    // Who made each identity, token and grant, with the credential they used (null: the
    // server itself, or a row from before this was recorded).
    for (const [table, prefix] of [
      ['identities', 'created'],
      ['tokens', 'created'],
      ['tokens', 'revoked'],
      ['identity_roles', 'granted'],
      ['team_members', 'granted'],
    ] as const) {
      await db.schema.alterTable(table).addColumn(`${prefix}_by`, 'text').execute();
      await db.schema.alterTable(table).addColumn(`${prefix}_credential`, 'text').execute();
    }
    for (const table of ['identity_roles', 'team_members'] as const)
      await db.schema.alterTable(table).addColumn('granted_at', 'text').execute();
    // Local passwords (scrypt, optional) and service-account expiry.
    await db.schema.alterTable('identities').addColumn('password_hash', 'text').execute();
    await db.schema.alterTable('identities').addColumn('expires_at', 'text').execute();
    // The SSO login (issuer and subject) a user is bound to: a login with another subject never
    // becomes this user, whatever name its claims carry.
    await db.schema.alterTable('identities').addColumn('sso_issuer', 'text').execute();
    await db.schema.alterTable('identities').addColumn('sso_subject', 'text').execute();
    // Operators' Cedar policies added through the API; validated with the rest before storing.
    await db.schema
      .createTable('authz_policies')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('text', 'text', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_credential', 'text', (c) => c.notNull())
      .execute();
  },
};

const m0005: PortableMigration = {
  async up(db, caps) {
    // Writers record an event in the change's own transaction, in this queue: one insert, no
    // lock, so concurrent writers do not wait for each other. The integrator moves queued
    // events into the log in batches, giving each its index (gap-free, in commit order for any
    // one subject, since changes to one subject are serialised by its row lock).
    await db.schema
      .createTable('audit_pending')
      // SQLite: a plain INTEGER PRIMARY KEY numbers rows without AUTOINCREMENT's extra write per
      // insert; a number reused after the queue empties is harmless, only the order counts.
      .addColumn('id', caps.engine === 'sqlite' ? 'integer' : 'bigserial', (c) => c.primaryKey())
      .addColumn('time', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('credential', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('content', 'text', (c) => c.notNull())
      .execute();
    // The tree size, in one row, which the integrator locks while it appends.
    await db.schema
      .createTable('audit_head')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .execute();
    await sql`INSERT INTO audit_head (id, size) VALUES (1, 0)`.execute(db);
    await db.schema
      .createTable('audit_events')
      .addColumn('seq', 'bigint', (c) => c.primaryKey())
      .addColumn('time', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('credential', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      // The change's content (canonical JSON) whose digest the leaf carries.
      .addColumn('content', 'text', (c) => c.notNull())
      // The leaf: the exact canonical JSON bytes hashed into the tree.
      .addColumn('leaf', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('audit_events_subject')
      .on('audit_events')
      .columns(['subject', 'seq'])
      .execute();
    // Hashes of complete subtrees, by (level, index): level 0 holds the leaf hashes. Proofs
    // and roots read O(log n) of them.
    await db.schema
      .createTable('audit_nodes')
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('idx', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('audit_nodes_pk', ['level', 'idx'])
      .execute();
    await db.schema
      .createTable('audit_checkpoints')
      .addColumn('size', 'bigint', (c) => c.primaryKey())
      .addColumn('root', 'text', (c) => c.notNull())
      .addColumn('note', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('audit_cosignatures')
      .addColumn('size', 'bigint', (c) => c.notNull().references('audit_checkpoints.size'))
      .addColumn('witness', 'text', (c) => c.notNull())
      .addColumn('line', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('audit_cosignatures_pk', ['size', 'witness'])
      .execute();
    // Append only, in the database too: no code path can rewrite history. (Someone with the
    // database's owner rights can; that is what the Merkle log and `audit verify` catch.)
    const tables = ['audit_events', 'audit_nodes', 'audit_checkpoints', 'audit_cosignatures'];
    if (caps.engine === 'sqlite') {
      for (const t of tables)
        for (const [name, event] of [
          ['append_only', 'UPDATE'],
          ['no_delete', 'DELETE'],
        ])
          await sql
            .raw(`CREATE TRIGGER ${t}_${name} BEFORE ${event} ON ${t}
                  BEGIN SELECT RAISE(ABORT, 'AUDIT_APPEND_ONLY'); END`)
            .execute(db);
    } else {
      await sql
        .raw(`CREATE FUNCTION modelgate_refuse_audit_change() RETURNS trigger
              LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'AUDIT_APPEND_ONLY'; END $$`)
        .execute(db);
      for (const t of tables)
        await sql
          .raw(`CREATE TRIGGER ${t}_append_only BEFORE UPDATE OR DELETE ON ${t}
                FOR EACH ROW EXECUTE FUNCTION modelgate_refuse_audit_change()`)
          .execute(db);
    }
  },
};

const m0006: PortableMigration = {
  async up(db, caps) {
    // Gate policies: each published version immutable, named by (name, version) and digest.
    await db.schema
      .createTable('gate_policies')
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      // The parsed document as canonical JSON (what the digest covers) and the text as sent.
      .addColumn('document', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('published_by', 'text', (c) => c.notNull())
      .addColumn('published_credential', 'text', (c) => c.notNull())
      .addColumn('published_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('gate_policies_pk', ['name', 'version'])
      .addUniqueConstraint('gate_policies_digest', ['name', 'digest'])
      .execute();
    if (caps.engine === 'sqlite') {
      for (const [name, event] of [
        ['immutable', 'UPDATE'],
        ['no_delete', 'DELETE'],
      ])
        await sql
          .raw(`CREATE TRIGGER gate_policies_${name} BEFORE ${event} ON gate_policies
                BEGIN SELECT RAISE(ABORT, 'GATE_POLICY_IMMUTABLE'); END`)
          .execute(db);
    } else {
      await sql
        .raw(`CREATE FUNCTION modelgate_refuse_gate_policy_change() RETURNS trigger
              LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'GATE_POLICY_IMMUTABLE'; END $$`)
        .execute(db);
      await sql
        .raw(`CREATE TRIGGER gate_policies_immutable BEFORE UPDATE OR DELETE ON gate_policies
              FOR EACH ROW EXECUTE FUNCTION modelgate_refuse_gate_policy_change()`)
        .execute(db);
    }
  },
};

// An auto-incrementing integer primary key on either engine (used from 0007 on; earlier
// migrations keep their own copies, since a released migration is never edited).
const serialPk = (caps: EngineCaps) => (c: ColumnDefinitionBuilder) =>
  caps.engine === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey();

// Append-only tables of 0007: a decision or a review, once written, is what happened.
async function appendOnly(db: AnyDb, caps: EngineCaps, table: string, code: string) {
  if (caps.engine === 'sqlite') {
    for (const [name, event] of [
      ['immutable', 'UPDATE'],
      ['no_delete', 'DELETE'],
    ])
      await sql
        .raw(`CREATE TRIGGER ${table}_${name} BEFORE ${event} ON ${table}
              BEGIN SELECT RAISE(ABORT, '${code}'); END`)
        .execute(db);
  } else {
    await sql
      .raw(`CREATE FUNCTION modelgate_refuse_${table}_change() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '${code}'; END $$`)
      .execute(db);
    await sql
      .raw(`CREATE TRIGGER ${table}_immutable BEFORE UPDATE OR DELETE ON ${table}
            FOR EACH ROW EXECUTE FUNCTION modelgate_refuse_${table}_change()`)
      .execute(db);
  }
}

const m0007: PortableMigration = {
  async up(db, caps) {
    const serial = serialPk(caps);
    // Every gate evaluation: the policies (name, version, digest) and each rule's result, the
    // engine, the facts as canonical JSON and their digest, the outcome, and whether the alias
    // moved because of it.
    await db.schema
      .createTable('gate_decisions')
      .addColumn('id', caps.serialType, serial)
      .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id'))
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('alias', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('request_id', 'integer')
      .addColumn('policies', 'text', (c) => c.notNull())
      .addColumn('engine', 'text', (c) => c.notNull())
      .addColumn('facts', 'text', (c) => c.notNull())
      .addColumn('facts_digest', 'text', (c) => c.notNull())
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('waivers', 'text', (c) => c.notNull())
      .addColumn('moved', 'integer', (c) => c.notNull())
      .addColumn('decided_by', 'text', (c) => c.notNull())
      .addColumn('credential', 'text', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('gate_decisions_alias')
      .on('gate_decisions')
      .columns(['model_id', 'alias', 'id'])
      .execute();
    await appendOnly(db, caps, 'gate_decisions', 'GATE_DECISION_IMMUTABLE');
    await db.schema
      .createTable('promotion_requests')
      .addColumn('id', caps.serialType, serial)
      .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id'))
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('alias', 'text', (c) => c.notNull())
      .addColumn('requested_by', 'text', (c) => c.notNull())
      .addColumn('credential', 'text', (c) => c.notNull())
      .addColumn('requested_at', 'text', (c) => c.notNull())
      // pending, promoted, denied, rejected, superseded
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('closed_at', 'text')
      .addColumn('decision_id', 'integer')
      .execute();
    await db.schema
      .createIndex('promotion_requests_state')
      .on('promotion_requests')
      .columns(['state', 'model_id', 'alias'])
      .execute();
    await db.schema
      .createTable('promotion_reviews')
      .addColumn('id', caps.serialType, serial)
      .addColumn('request_id', 'integer', (c) => c.notNull().references('promotion_requests.id'))
      .addColumn('reviewer', 'text', (c) => c.notNull())
      .addColumn('roles', 'text', (c) => c.notNull())
      .addColumn('teams', 'text', (c) => c.notNull())
      .addColumn('decision', 'text', (c) => c.notNull())
      .addColumn('comment', 'text', (c) => c.notNull())
      .addColumn('credential', 'text', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('promotion_reviews_request')
      .on('promotion_reviews')
      .column('request_id')
      .execute();
    await appendOnly(db, caps, 'promotion_reviews', 'PROMOTION_REVIEW_IMMUTABLE');
    // A waiver accepts findings of one rule (finding_rule) or the failure of one gate rule
    // (`policy/validation`), for one version or (version null) every version of a model.
    await db.schema
      .createTable('waivers')
      .addColumn('id', caps.serialType, serial)
      .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id'))
      .addColumn('version', 'integer')
      .addColumn('finding_rule', 'text')
      .addColumn('rule', 'text')
      .addColumn('justification', 'text', (c) => c.notNull())
      .addColumn('approved_by', 'text', (c) => c.notNull())
      .addColumn('credential', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('revoked_at', 'text')
      .addColumn('revoked_by', 'text')
      .addColumn('revoked_credential', 'text')
      .execute();
    await db.schema.createIndex('waivers_model').on('waivers').column('model_id').execute();
    // The decision that moved a protected alias to its version (null for plain aliases).
    await db.schema.alterTable('aliases').addColumn('decision_id', 'integer').execute();
  },
};

const m0008: PortableMigration = {
  async up(db, caps) {
    const serial = serialPk(caps);
    // Signed in-toto statements about versions (DSSE envelopes as sent), append-only; each is
    // also an audit event, so a bundle can prove it is in the log.
    await db.schema
      .createTable('attestations')
      .addColumn('id', caps.serialType, serial)
      .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id'))
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('ref', 'text', (c) => c.notNull())
      .addColumn('predicate_type', 'text', (c) => c.notNull())
      .addColumn('envelope', 'text', (c) => c.notNull())
      .addColumn('envelope_digest', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('attestations_version')
      .on('attestations')
      .columns(['model_id', 'version', 'id'])
      .execute();
    await db.schema
      .createIndex('attestations_ref')
      .on('attestations')
      .columns(['kind', 'ref'])
      .execute();
    await appendOnly(db, caps, 'attestations', 'ATTESTATION_IMMUTABLE');
  },
};

const m0009: PortableMigration = {
  async up(db) {
    // Finished units of an evaluation's work (a red-team attempt: probe, generation, verdict,
    // and for successful attacks the transcript), so that a run resumed after a crash does
    // not send them again; afterwards the evidence of what the attacks got out of the model.
    await db.schema
      .createTable('evaluation_checkpoints')
      .addColumn('evaluation_id', 'text', (c) => c.notNull().references('evaluations.id'))
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('evaluation_checkpoints_pk', ['evaluation_id', 'key'])
      .execute();
  },
};

const m0012: PortableMigration = {
  async up(db, caps) {
    // A rejection stands for its version and alias until the approver who gave it withdraws it
    // (or an admin overrides it): the withdrawal is a record of its own, reviews never change.
    await db.schema
      .createTable('review_withdrawals')
      .addColumn('id', caps.serialType, serialPk(caps))
      .addColumn('review_id', 'integer', (c) =>
        c.notNull().unique().references('promotion_reviews.id'),
      )
      .addColumn('withdrawn_by', 'text', (c) => c.notNull())
      .addColumn('credential', 'text', (c) => c.notNull())
      .addColumn('comment', 'text', (c) => c.notNull())
      .addColumn('override', 'integer', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
    await appendOnly(db, caps, 'review_withdrawals', 'REVIEW_WITHDRAWAL_IMMUTABLE');
  },
};

const m0014: PortableMigration = {
  async up(db, caps) {
    // The layout digest binds paths to bytes (the version digest, the OpenSSF subject, covers
    // only the bytes in path order). Computed here for every existing version from its files.
    await db.schema.alterTable('versions').addColumn('layout_digest', 'text').execute();
    const vdb = db as unknown as Kysely<{
      versions: { id: number; layout_digest: string | null };
      version_files: { version_id: number; path: string; sha256: string };
    }>;
    for (let after = 0; ; ) {
      const ids = (
        await vdb
          .selectFrom('versions')
          .select('id')
          .where('id', '>', after)
          .orderBy('id')
          .limit(500)
          .execute()
      ).map((r) => Number(r.id));
      if (ids.length === 0) break;
      const files = await vdb
        .selectFrom('version_files')
        .select(['version_id', 'path', 'sha256'])
        .where('version_id', 'in', ids)
        .execute();
      const byVersion = new Map<number, { path: string; size: number; sha256: string }[]>();
      for (const f of files) {
        const list = byVersion.get(Number(f.version_id)) ?? [];
        list.push({ path: f.path, size: 0, sha256: f.sha256.replace(/^sha256:/, '') });
        byVersion.set(Number(f.version_id), list);
      }
      for (const id of ids)
        await vdb
          .updateTable('versions')
          .set({ layout_digest: layoutDigest(byVersion.get(id) ?? []) })
          .where('id', '=', id)
          .execute();
      after = ids[ids.length - 1] ?? after;
    }
    await db.schema
      .createIndex('versions_layout_digest')
      .on('versions')
      .column('layout_digest')
      .execute();
    // Immutable from now on, like the version digest.
    if (caps.engine === 'sqlite')
      await sql
        .raw(`CREATE TRIGGER versions_layout_immutable BEFORE UPDATE OF layout_digest ON versions
              BEGIN SELECT RAISE(ABORT, 'VERSION_IMMUTABLE'); END`)
        .execute(db);
    else
      await sql
        .raw(`CREATE TRIGGER versions_layout_immutable BEFORE UPDATE OF layout_digest ON versions
              FOR EACH ROW EXECUTE FUNCTION modelgate_refuse_version_change()`)
        .execute(db);
  },
};

const m0015: PortableMigration = {
  async up(db) {
    // Values the servers sharing one database must agree on and create once: the key that
    // signs list cursors, the marker of the one initial admin token.
    await db.schema
      .createTable('server_settings')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
};

const m0020: PortableMigration = {
  async up(db, caps) {
    // History queries find events by the subject in their leaf, the bytes the tree covers, not
    // by the subject column beside it, which a database owner can edit: an index on the leaf's
    // subject keeps them fast (byte order, so that a prefix is a range).
    // KyselyAuditStore's LEAF_SUBJECT spells these expressions exactly, so that it uses them.
    await sql
      .raw(
        caps.engine === 'sqlite'
          ? `CREATE INDEX audit_events_leaf_subject ON audit_events (json_extract(leaf, '$.subject'), seq)`
          : `CREATE INDEX audit_events_leaf_subject ON audit_events ((((leaf::jsonb) ->> 'subject') COLLATE "C"), seq)`,
      )
      .execute(db);
  },
};

/** Every migration, in order. Append only: a released migration is never edited. */
const MIGRATIONS: Record<string, PortableMigration> = {
  '0001_registry_core': m0001,
  '0002_evaluations': m0002,
  '0003_identity_roles': m0003,
  '0004_identity_admin': m0004,
  '0005_audit_log': m0005,
  '0006_gate_policies': m0006,
  '0007_promotions': m0007,
  '0008_attestations': m0008,
  '0009_evaluation_checkpoints': m0009,
  '0012_review_withdrawals': m0012,
  '0014_layout_digest': m0014,
  '0015_server_settings': m0015,
  '0020_audit_leaf_subject': m0020,
};

/** Brings the schema up to date. Safe to call from several processes at once (the migrator locks). */
export async function migrate(database: Database): Promise<void> {
  const migrations: Record<string, Migration> = {};
  for (const [name, m] of Object.entries(MIGRATIONS)) {
    migrations[name] = { up: (db) => m.up(db, database.caps) };
  }
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'modelgate_migrations',
    migrationLockTableName: 'modelgate_migrations_lock',
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed: ${(error as Error).message ?? error}`);
  }
}
