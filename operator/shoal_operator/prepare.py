"""Stage 1 of a batch: make each app ready to schedule. Check what the schema cannot (references to
Secrets), create its provisioned dependencies, and pin its module tag to a digest.

Done once per generation; a problem (a missing Secret, a tag that does not resolve) is kept, posted
as a Warning once, and retried with the app's backoff. The result is the app's `Prepared` memo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shoal_api import WasmApp
from shoal_api.schedule import schedule_problem
from shoal_operator import adapt
from shoal_operator.cache import ClusterCache
from shoal_operator.dependencies import dependency_endpoints, generate_password, render_dependency
from shoal_operator.events import Notify
from shoal_operator.kube import Kube
from shoal_operator.memo import Memos, Prepared
from shoal_operator.resolver import DigestResolver, ResolveError
from shoal_operator.workqueue import WorkQueue

logger = logging.getLogger(__name__)


@dataclass
class Prepare:
    cache: ClusterCache
    kube: Kube
    resolver: DigestResolver
    notify: Notify
    queue: WorkQueue
    memos: Memos

    async def __call__(self, app: WasmApp) -> Prepared:
        memo = self.memos[app.key]
        generation = app.metadata.generation or 0
        cached = memo.prepared
        if (
            cached is not None
            and cached.generation == generation
            and cached.problem is None
            and not cached.stale
        ):
            return cached
        prep = Prepared(generation=generation)
        try:
            prep.problem = await self._validate(app)
            if prep.problem is None:
                await self._ensure_dependencies(app)
                prep.endpoints = dependency_endpoints(app, namespace=app.metadata.namespace or "")
                prep.digest = await self._resolve_digest(app)
        except ResolveError as e:
            kept = adapt.pinned_digest(app, self.cache.app_placements(app.key))
            if kept is None:
                prep.problem = ("ModuleUnavailable", str(e))
            else:
                # Fail static: a scale-out during a registry outage places the bytes already
                # running; the lookup is retried, and a tag that moved meanwhile then rolls out.
                prep.digest, prep.stale = kept, True
                if memo.stale_message != str(e):
                    memo.stale_message = str(e)
                    message = f"{e}; keeping {kept}, which the app's placements run"
                    await self.notify.warn(app, reason="ModuleUnresolved", message=message)
                self.queue.retry(app.key)
        if prep.problem is not None:
            if memo.problem_message != prep.problem[1]:
                memo.problem_message = prep.problem[1]
                await self.notify.warn(app, reason=prep.problem[0], message=prep.problem[1])
            self.queue.retry(app.key)
        elif not prep.stale:
            self.queue.succeeded(app.key)
            memo.problem_message = memo.stale_message = None
        memo.prepared = prep
        return prep

    async def _validate(self, app: WasmApp) -> tuple[str, str] | None:
        """What the schema cannot check: references to other objects, and what only croniter and
        the zone database can read in a schedule."""
        ns = app.metadata.namespace or ""
        schedule = app.spec.trigger.schedule
        if schedule is not None:
            problem = schedule_problem(schedule.cron, schedule.time_zone)
            if problem is not None:
                return "InvalidSchedule", f"trigger.schedule: {problem}"
        for env in app.spec.env:
            ref = env.value_from.secret_key_ref if env.value_from else None
            if ref is None:
                continue
            data = await self.kube.read_secret(ns, ref.name)
            if data is None:
                return "SecretNotFound", f"env {env.name}: Secret {ns}/{ref.name} does not exist"
            if ref.key not in data:
                return "SecretKeyNotFound", f"env {env.name}: Secret {ns}/{ref.name} has no key {ref.key!r}"
        for mount in app.spec.files.mounts if app.spec.files else []:
            cm = mount.config_map
            if cm is not None and not await self.kube.config_map_exists(ns, cm.name):
                return "ConfigMapNotFound", f"files {mount.path}: ConfigMap {ns}/{cm.name} does not exist"
        for secret in app.spec.module.image_pull_secrets:
            if await self.kube.read_pull_secret(ns, secret.name) is None:
                return (
                    "PullSecretNotFound",
                    f"imagePullSecrets: Secret {ns}/{secret.name} is missing or not a dockerconfigjson",
                )
        return None

    async def _ensure_dependencies(self, app: WasmApp) -> None:
        for dep in app.spec.dependencies:
            if dep.service_ref is not None:
                continue
            password = generate_password() if dep.mysql is not None else None
            for body in render_dependency(app, dep, password=password).all():
                if await self.kube.create_if_absent(body):
                    message = f"created {body['kind']} {body['metadata']['name']} for {dep.name}"
                    await self.notify.inform(app, reason="DependencyCreated", message=message)

    async def _resolve_digest(self, app: WasmApp) -> str:
        image = app.spec.module.image
        if "@sha256:" in image:
            return image.split("@", 1)[1]
        ns = app.metadata.namespace or ""
        secrets = []
        for ref in app.spec.module.image_pull_secrets:
            secret = await self.kube.read_pull_secret(ns, ref.name)
            if secret is not None:
                secrets.append(secret)
        digest = await self.resolver.resolve(image, secrets)
        logger.debug("%s: module %s resolved to %s", app.key, image, digest)
        return digest
