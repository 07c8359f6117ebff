export {
  type BuildResult,
  type BuildVariantRequest,
  buildVariant,
  type Isolation,
  type LayerInfo,
  type RebuildOntoRequest,
  rebuildOnto,
  type StorageDriver,
  storageArgs,
  variantTag,
} from './builder.ts';
export {
  BuildCoordinator,
  type BuildCoordinatorOptions,
  type BuildRecord,
  type BuildRecordStore,
  type CoordinatedResult,
  MemoryBuildRecordStore,
} from './coordinator.ts';
export { BuildFailed, type BuildFailureCode, UnknownRefError } from './errors.ts';
export { type GitAccess, GitFetchError, type RepoLocation, repoLocation } from './git.ts';
export { type BuildRegistry, getDiffIds, getManifest } from './registry-client.ts';
export { composeDockerfile, type TailFile, type TailSpec, TailSpecError } from './tail.ts';
