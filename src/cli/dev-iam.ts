import type { Command } from '../cli.js';
import { runDevIamCli } from '../dev-iam/cli.js';
import { readEnvironment } from '../shared/config.js';

/** `tokex dev-iam`: runs the development IAM (oidc-provider made to behave like Keycloak) for people. */
export const command: Command = {
  summary: 'Run the development IAM (Keycloak-like, on oidc-provider) on DEV_IAM_HOST:DEV_IAM_PORT (default 127.0.0.1:8081). Not for production.',
  usage: 'tokex dev-iam [--host 127.0.0.1] [--port 8081] [--mode v1|v2] [--realm dev] [--public-url URL] [--no-control-api]',
  async run(args) {
    await runDevIamCli(args, readEnvironment());
    return 0;
  },
};
