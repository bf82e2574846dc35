/**
 * bt.optim: optimizers applied natively (SGD with momentum / Nesterov, Adam, AdamW,
 * RMSProp), clipping by global norm (`clipNorm`), and learning-rate schedules
 * (`stepLR`, `exponentialLR`, `cosineLR`). See docs/optim.md.
 */
export {
  SGD,
  Adam,
  AdamW,
  RMSProp,
  type Optimizer,
  type OptimizerKind,
  type OptimizerState,
  type StepResult,
  type StepOptions,
  type LearningRate,
  type CommonOptions,
  type SGDOptions,
  type AdamOptions,
  type RMSPropOptions,
} from './optimizers';
export {
  stepLR,
  exponentialLR,
  cosineLR,
  type Schedule,
  type StepLROptions,
  type ExponentialLROptions,
  type CosineLROptions,
} from './schedules';
