/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Coordinator URL used when the page has no ?server= parameter. */
  readonly VITE_FLOCK_SERVER?: string;
  /** Client token used when the page has no ?token= parameter. */
  readonly VITE_FLOCK_CLIENT_TOKEN?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
