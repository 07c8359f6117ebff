import type { Json } from '../types.ts';
import type { Workspace } from '../workspace.ts';

/** One Web API method: the arguments in, the answer's fields out (`ok: true` is added); throws ApiError. */
export type WebApiMethod = (ws: Workspace, args: Json) => Json;
