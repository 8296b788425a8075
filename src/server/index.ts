/**
 * `ucanlog/server`: embedding the service in a Node program (docs/client.md "Embedding the
 * service"). {@link startService} is what `ucanlog serve` runs: keys and state created in
 * `dataDir` on first start, the bundled witness, the witness policy, the log engine, the UCAN RPC
 * and the HTTP routes of docs/wire.md on one port. The configuration is {@link ServiceConfig}
 * (every field documented, units included; docs/configuration.md lists the flags and variables);
 * {@link resolveConfig} reads it from strings and the environment as the CLI does.
 *
 * The bundled witness (c2sp.org/tlog-witness) is exported too, to run one on its own
 * (`ucanlog witness serve` does): {@link openWitness}, {@link witnessApp}, {@link witnessVkey}.
 */
export { startService, type RunningService } from './service.js'
export { type ServiceConfig, DEFAULT_CONFIG, KNOBS, type Knob, ConfigError, resolveConfig } from './config.js'
export { PolicyConfigError } from './policy.js'
export { InsecureKeyFileError } from './keys.js'
export { VERSION } from './version.js'
export {
  openWitness,
  witnessApp,
  witnessVkey,
  Witness,
  SqliteWitnessStore,
  WITNESS_KEY_SIZE,
  type WitnessAppOptions,
  type WitnessOptions,
  type WitnessStore,
} from '../../witness/index.js'
