// A plan's value with the layer that set it: what `ferry explain` and `/release plan` show beside each
// setting. Its own module so the plan and the parts it is layered from (analysis) share it without
// importing each other.

/** Where a setting's value came from: "default", "environment prod" or "factor canary". */
export type Source = string;

export interface Setting<T> {
  value: T;
  source: Source;
}
