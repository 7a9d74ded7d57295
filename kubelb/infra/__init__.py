"""How the manager runs the tenants' Envoys: each module implements `manager.infrastructure.Infra`.

`process.ProcessInfra`: local Envoy processes and an address pool; `kubernetes.KubernetesInfra`:
Deployments on the management cluster. The composition root (`kubelb.app.manager`) picks one
from `--envoy-deployer`. Above `kubelb.manager` and `kubelb.envoy` in the import layers: an
implementation joins the manager's reconcilers (which declare what they need) to a way of running
Envoy, and neither of those may import the other.
"""
