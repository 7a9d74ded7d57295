"""The only Kubernetes client layer: informers, caches, work queues, status writers, leases.

Everything in kubelb that talks to an API server goes through this package, over its own
transport: importing `kubernetes_asyncio` loads all its generated models (about 40 MiB), so
import-linter keeps it to the test control plane. Objects are raw JSON dicts throughout;
`kubelb.api` parses them into models where a controller wants types. Modules, bottom up:

- `objects`     `RawObject`, `ObjectKey(namespace, name)`, metadata accessors, `owner_reference`.
- `resources`   `Resource` descriptors and a constant per kind we use (`SERVICES`, `LEASES`...).
- `errors`      the typed error tree mapped from HTTP status (`NotFoundError`, `ConflictError`...).
- `credentials` a kubeconfig context or the Pod's ServiceAccount -> `Endpoint` (server, TLS, auth).
- `transport`   `Api`: one aiohttp connection pool to an API server, with the Authorization header.
- `kubeconfig`  `open_source(path)`: a kubeconfig re-read when it changes, or in-cluster.
- `client`      `Client`: get/list/watch/create/replace/patch/apply/status/delete/create_token.
- `interface`   `KubeApi`: that surface as a Protocol, which the modules below take.
- `memory`      `MemoryClient`: the same surface over an in-memory API server (`memstore`,
                `memwatch`, `patching`, `selectors`), for standalone mode and tests.
- `store`       `Store` (indexed cache) and its read-only `Reader` view for reconcilers.
- `informer`    `Informer` (list+watch into a store, handlers get `Change`s) and `Informers`.
- `workqueue`   `WorkQueue`: deduplicating, one worker per key, delayed and rate-limited adds.
- `watches`     `Watch` declarations, predicates (`spec_changed`...) and mappers (`owner_keys`...).
- `controller`  `Reconciler` protocol, `Result`, `Controller` runner, `run_all`.
- `writer`      `Writer`: status writes that skip no-ops and retry 409s; `ensure` owned objects.
- `events`      `EventRecorder`: core/v1 Events with repeats aggregated.
- `leader`      `LeaderElector`: Lease-based leader election running leader-only work.

Wiring, in an app: `kube = client.Client(await kubeconfig.open_source(path))`;
`informers = informer.Informers(kube)`; reconcilers take stores from `informers.get(...)`, a
`writer.Writer(kube)` and an `events.EventRecorder(kube, component)`; then in one TaskGroup run
`informers.run()` and `elector.run(lambda: controller.run_all(controllers))`.
"""
