// Counting approvals against a plan's requirements. A plan may need approvals
// from several groups (the environment's approvers, and the authority of
// each factor that relaxes a rule); a person in two of those groups still
// counts once. Which requirement each approval fills is a matching of
// approvers to slots, so an approval is never wasted on a slot someone else
// could have filled.
import { type ApprovalRequirement, approvalRequirements, type Plan } from './plan.ts';

export interface GivenApproval {
  by: string;
  /** The requirement groups the approver belonged to when approving; unset on approvals stored before requirements. */
  groups?: string[];
}

export interface ApprovalCount {
  /** For each requirement (in plan order), the approvers counted toward it. */
  counted: string[][];
  /** Approvals counted in all. */
  total: number;
  /** Approvals still needed, by requirement. */
  missing: { requirement: ApprovalRequirement; count: number }[];
}

export function countApprovals(plan: Plan, approvals: readonly GivenApproval[]): ApprovalCount {
  const requirements = approvalRequirements(plan);
  const slots: number[] = requirements.flatMap((r, i) => Array.from({ length: r.required.value }, () => i));
  // Old approvals carry no groups: they were given for the one requirement there was.
  const eligible = (a: GivenApproval, slot: number) => {
    const group = requirements[slots[slot] as number]?.group.value;
    return a.groups ? a.groups.includes(group as string) : slots[slot] === 0;
  };
  const owner: (number | undefined)[] = slots.map(() => undefined);
  // Kuhn's augmenting paths: small numbers (a handful of approvers and slots).
  const place = (who: number, seen: Set<number>): boolean => {
    for (let slot = 0; slot < slots.length; slot++) {
      if (seen.has(slot) || !eligible(approvals[who] as GivenApproval, slot)) continue;
      seen.add(slot);
      const holder = owner[slot];
      if (holder === undefined || place(holder, seen)) {
        owner[slot] = who;
        return true;
      }
    }
    return false;
  };
  let total = 0;
  const seenPeople = new Set<string>();
  approvals.forEach((a, i) => {
    // One person is one approval, however often they are recorded.
    if (seenPeople.has(a.by)) return;
    seenPeople.add(a.by);
    if (place(i, new Set())) total++;
  });
  const counted: string[][] = requirements.map(() => []);
  owner.forEach((who, slot) => {
    if (who !== undefined) counted[slots[slot] as number]?.push((approvals[who] as GivenApproval).by);
  });
  const missing = requirements
    .map((requirement, i) => ({ requirement, count: requirement.required.value - (counted[i]?.length ?? 0) }))
    .filter((m) => m.count > 0);
  return { counted, total, missing };
}
