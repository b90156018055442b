"""Pure computation: spec models, simulators, batched evaluation, metrics, artifacts, optimizers.

Nothing in ``huntflow.engine`` touches the database or Prefect; it imports no other huntflow
package except the leaf module :mod:`huntflow.errors`.
"""

from huntflow.engine.devices import configure_cpu_devices as _configure_cpu_devices

_configure_cpu_devices()
