"""The whitened_convnet recipe's optimisation: a one-cycle learning rate, SGD with a larger rate for
batch-norm offsets, and lookahead weight averaging."""

import keras

from mltrain.keras.distillation import student


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear rise from `start` x peak to the peak, then linear decay to `end` x peak (keyed on
    the optimizer's step, so a resumed run continues the same schedule)."""

    def __init__(self, peak, total_steps, warmup_steps, start=0.0, end=0.0):
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps
        self.start, self.end = start, end

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rise = self.start + (1 - self.start) * step / max(self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        fall = 1 - (1 - self.end) * progress
        return self.peak * keras.ops.maximum(keras.ops.minimum(rise, fall), 0.0)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "start": self.start,
            "end": self.end,
        }


class BiasScaledSGD(keras.optimizers.SGD):
    """SGD whose learning rate is `bias_scale` times larger for batch-norm offsets (`beta`):
    airbench found this speeds training of batch-normed networks markedly."""

    def __init__(self, *args, bias_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.bias_scale = bias_scale

    def build(self, variables):
        super().build(variables)
        # The update step sees the backend's variables, not the layer's: key them the same way.
        self.bias_keys = {self._var_key(v) for v in variables if v.name == "beta"}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self.bias_keys:
            learning_rate = learning_rate * self.bias_scale
        super().update_step(gradient, variable, learning_rate)


class Lookahead(keras.callbacks.Callback):
    """Every `every` steps from `start_step` on, move a running average of the weights towards
    the current weights and put the average back into the model (airbench's lookahead). The
    average's decay grows towards the end, so the final weights are a strong average."""

    def __init__(self, start_step, total_steps, every=5, decay=0.95**5, power=3.0):
        super().__init__()
        self.start_step, self.total_steps, self.every = start_step, total_steps, every
        self.decay, self.power = decay, power
        self.average = None

    def on_epoch_begin(self, epoch, logs=None):
        # Counted here rather than read from the optimizer every step: reading the model
        # would make the JAX backend hand its state back after every step.
        self.step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step < self.start_step or self.step % self.every:
            return
        current = [v.numpy() for v in student(self.model).weights]
        if self.average is None:  # also after a resume: the average restarts from here
            self.average = current
            return
        rho = self.decay * min(self.step / self.total_steps, 1.0) ** self.power
        self.average = [rho * a + (1 - rho) * c for a, c in zip(self.average, current)]
        self.restore()

    def on_epoch_end(self, epoch, logs=None):
        if self.average is not None:
            self.restore()

    def restore(self):
        for variable, value in zip(student(self.model).weights, self.average):
            variable.assign(value)
