import type { Kysely, Selectable } from 'kysely';
import { modelContent, subjects } from '../audit/subjects.js';
import type { Actor, Model, RiskTier } from '../core/types.js';
import type { ModelPatch } from '../registry/registry-store.js';
import type { AuditEventInput } from './audit-append.js';
import type { DB, ModelsTable } from './schema.js';

/** A models row as the domain type. */
export function toModel(r: Selectable<ModelsTable>): Model {
  return {
    name: r.name,
    ownerTeam: r.owner_team,
    riskTier: r.risk_tier as RiskTier,
    description: r.description,
    intendedUse: r.intended_use,
    tags: JSON.parse(r.tags) as string[],
    createdAt: r.created_at,
    createdBy: r.created_by,
    updatedAt: r.updated_at,
  };
}

/**
 * Writes a model's changed attributes and their audit event, inside the caller's transaction
 * (the model row already locked). The one place a model row changes: a plain edit and a
 * classification (tier, team, bound tags) differ only in the action they log.
 */
export async function writeModelPatch(
  trx: Kysely<DB>,
  name: string,
  patch: ModelPatch,
  actor: Actor,
  at: string,
  action: 'model.update' | 'model.classify',
  audit: (trx: Kysely<DB>, e: AuditEventInput, at: string) => Promise<void>,
): Promise<Model> {
  const row = await trx
    .updateTable('models')
    .set({
      ...(patch.ownerTeam !== undefined && { owner_team: patch.ownerTeam }),
      ...(patch.riskTier !== undefined && { risk_tier: patch.riskTier }),
      ...(patch.description !== undefined && { description: patch.description }),
      ...(patch.intendedUse !== undefined && { intended_use: patch.intendedUse }),
      ...(patch.tags !== undefined && { tags: JSON.stringify(patch.tags) }),
      updated_at: at,
      updated_by: actor.identity,
    })
    .where('name', '=', name)
    .returningAll()
    .executeTakeFirstOrThrow();
  const model = toModel(row);
  await audit(
    trx,
    {
      actor,
      action,
      subject: subjects.model(name),
      content: { model: modelContent(model), patch },
    },
    at,
  );
  return model;
}
