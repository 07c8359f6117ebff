// One release in a few lines, for `/release status <id>`.
import { countApprovals } from '../src/domain/approvals.ts';
import { formatDuration } from '../src/domain/duration.ts';
import { approvalRequirements } from '../src/domain/plan.ts';
import { oneLine, type Release } from '../src/domain/release.ts';
import { literal, mention } from '../src/domain/text.ts';
import { when } from './command.ts';

export function describeRelease(r: Release): string {
  const p = r.plan;
  const lines = [
    `*${oneLine(r)}*`,
    `requested by ${mention(r.requestedBy)} at ${when(r.requestedAt)}; ${r.state} for ${formatDuration(Date.now() - r.stateSince)}`,
    `regions: ${r.regions.join(' → ')}; batches: ${p.batches.value.map((b) => b.size).join(', ')}`,
  ];
  const requirements = approvalRequirements(p);
  const counted = countApprovals(p, r.approvals).counted;
  requirements.forEach((q, i) => {
    if (q.required.value === 0) return;
    const by = counted[i] ?? [];
    const at = (id: string) => r.approvals.find((a) => a.by === id)?.at ?? 0;
    lines.push(
      `approvals${q.factor ? ` for ${q.factor}` : ''}: ${by.length}/${q.required.value} from ${q.group.value}${by.length ? ` (${by.map((id) => `${mention(id)} ${when(at(id))}`).join(', ')})` : ''}`,
    );
  });
  if (r.rejection) lines.push(`rejected by ${mention(r.rejection.by)}: ${literal(r.rejection.reason)}`);
  if (r.error) lines.push(`error: ${literal(r.error)}`);
  return lines.join('\n');
}
