"""Commands that touch the store: `migrate`, `policy activate|rollback|active`, `audit ...`.

Every one takes `--db URL` and honours REGIONLOCK_DATABASE_URL (default: sqlite:///regionlock.db
in the current directory).
"""

from __future__ import annotations

import csv
import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from regionlock.domain import merkle
from regionlock.domain.errors import InvalidInput
from regionlock.services.access import Access
from regionlock.services.audit_tree import AuditTree
from regionlock.services.checkin import MAX_TOKEN_LIFETIME
from regionlock.services.policy_admin import PolicyAdmin
from regionlock.settings import Settings
from regionlock.signing import TokenError
from regionlock.signing.audit_head import TREE_HEAD_VERSION, verify_audit_head
from regionlock.storage import DEFAULT_URL, Database, Stores, open_stores
from regionlock.storage.apikeys import Role
from regionlock.storage.audit import AuditEntry, AuditHead, TreeHead, VerifyResult, leaf_of
from regionlock.storage.migrate import available, migrate

db_option = click.option(
    "--db",
    "db_url",
    envvar="REGIONLOCK_DATABASE_URL",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="sqlite:///FILE or postgresql://USER@HOST/DB (env REGIONLOCK_DATABASE_URL).",
)


@contextmanager
def store(db_url: str) -> Iterator[Stores]:
    """The command's context: every storage role on the database at `db_url` (SQLite
    migrated on open), built once and closed afterwards; services take what they need."""
    stores = open_stores(db_url)
    try:
        yield stores
    finally:
        stores.close()


def actor() -> str:
    """Who is acting from this command line, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@click.command("migrate")
@db_option
def migrate_cmd(db_url: str) -> None:
    """Create or upgrade the database schema (idempotent; safe to run concurrently)."""
    period = Settings.from_env().checkin_partitions  # a bad setting stops it before it starts
    db = Database(db_url)
    try:
        done = migrate(db)
        # PostgreSQL's check-in history: this month's partition and the next two's, or this
        # day's and the next 14 days' (the service keeps them coming; docs/operating.md).
        made = Stores.on(db).checkins.prepare_partitions(datetime.now(UTC), period=period)
    finally:
        db.close()
    latest = len(available(db.dialect))
    if done:
        for m in done:
            click.echo(f"applied {m.version:04d}_{m.name}")
    for name in made:
        click.echo(f"made check-in partition {name}")
    click.echo(f"{db.dialect} database at schema version {latest}")


@click.command("activate")
@click.argument("policy_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@db_option
def activate(policy_file: str, reason: str, db_url: str) -> None:
    """Validate POLICY_FILE and make it the policy check-ins use."""
    with store(db_url) as stores:
        a = PolicyAdmin.of(stores).activate(
            Path(policy_file).read_text("utf-8"),
            source=policy_file,
            actor=actor(),
            reason=reason,
            now=datetime.now(UTC),
        )
    click.echo(f"active: {a.policy.policy_id} {a.policy.version} (sha256 {a.policy.sha256[:12]})")


@click.command("rollback")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@db_option
def rollback(reason: str, db_url: str) -> None:
    """Re-activate the policy that was active before the current one."""
    with store(db_url) as stores:
        a = PolicyAdmin.of(stores).rollback(actor=actor(), reason=reason, now=datetime.now(UTC))
    click.echo(f"active: {a.policy.policy_id} {a.policy.version} (rolled back)")


@click.command("active")
@db_option
def active(db_url: str) -> None:
    """Show the active policy and the activation history."""
    with store(db_url) as stores:
        history = PolicyAdmin.of(stores).policies.activations(20)
    if not history:
        click.echo("no policy is active: check-ins are allowed until one is activated")
        return
    for i, a in enumerate(history):
        when = datetime.fromtimestamp(a.activated_at / 1000, UTC).isoformat(timespec="seconds")
        mark = "*" if i == 0 else " "
        click.echo(
            f"{mark} {when}  {a.policy.policy_id} {a.policy.version}  by {a.activated_by}"
            f": {a.reason}"
        )


@click.group()
def audit() -> None:
    """Verify, anchor and export the tamper-evident audit trail (docs/audit.md)."""


def report_broken(result: VerifyResult) -> NoReturn:
    """Say on stderr what `verify` found wrong, and exit 1."""
    if result.first_broken is None:
        where, counted = "", f"{result.checked} entries verified"
    else:
        where = f" at entry {result.first_broken}"
        counted = f"{result.checked} entries verified before it"
    click.echo(f"audit trail BROKEN{where}: {result.problem} ({counted})", err=True)
    sys.exit(1)


def kept_head(stores: Stores, path: str) -> AuditHead | TreeHead:
    """The head kept in `path` from `audit head`: its token, alone or in the `--json` output
    (or the new head in `audit prove --since` output).
    Only what the token signs counts, and its signature must hold under the store's keys. A
    tree head (version 2), or an entry head (version 1) kept before the tree."""
    try:
        text = Path(path).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the kept head: {exc}") from exc
    token: Any = text
    if text.startswith("{"):
        try:
            doc = json.loads(text)
            # `audit head --json` writes the token as "token", `audit prove` as "head".
            token = doc.get("token", doc.get("head"))
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str):
            raise InvalidInput(f"{path}: JSON without the head's 'token'")
    try:
        _, claims = verify_audit_head(token, stores.keys.keyring(datetime.now(UTC)))
    except TokenError as exc:
        raise InvalidInput(
            f"{path}: not an audit head signed by this store: {exc.message}"
        ) from exc
    if claims["ver"] == TREE_HEAD_VERSION:
        return TreeHead(claims["size"], claims["root"], token=token)
    return AuditHead(claims["seq"], claims["hash"], claims["at"])


def _kept_words(kept: AuditHead | TreeHead) -> str:
    if isinstance(kept, TreeHead):
        return f"the kept tree head of {kept.size} entries"
    return f"the kept head at entry {kept.seq}"


@audit.command("verify")
@click.option(
    "--against",
    "head_file",
    type=click.Path(dir_okay=False, exists=True),
    metavar="HEAD_FILE",
    help="A head kept from `audit head`: the trail must still hold it and extend it.",
)
@db_option
def audit_verify(head_file: str | None, db_url: str) -> None:
    """Check every shard's hash chain, its head, and the Merkle tree with its signed heads;
    name the first broken entry."""
    with store(db_url) as stores:
        kept = kept_head(stores, head_file) if head_file is not None else None
        result = stores.audit.verify(against=kept)
    if not result.ok:
        report_broken(result)
    extends = f", extending {_kept_words(kept)}" if kept is not None else ""
    sealed = f", {result.tree.size} sealed in the tree" if result.tree is not None else ""
    click.echo(f"audit trail intact: {result.checked} entries{sealed}{extends}")


@audit.command("head")
@click.option("--json", "as_json", is_flag=True, help="Print the head as JSON, token included.")
@click.option(
    "--no-verify",
    is_flag=True,
    help="Do not read the whole trail first (large trails: `audit verify` separately).",
)
@db_option
def audit_head(as_json: bool, no_verify: bool, db_url: str) -> None:
    """Seal the trail into its Merkle tree and print the tree's head (size, root) signed by
    the service's key. Keep it outside the database: `audit verify --against` it shows a later
    rewrite, `audit prove --since` it proves a later head extends it."""
    with store(db_url) as stores:
        if not no_verify:
            result = stores.audit.verify()
            if not result.ok:
                report_broken(result)
        head = AuditTree.of(stores).head()
        assert head.token is not None
        kid, claims = verify_audit_head(head.token, stores.keys.keyring(datetime.now(UTC)))
    if as_json:
        click.echo(json.dumps({**claims, "kid": kid, "token": head.token}, sort_keys=True))
        return
    click.echo(head.token)
    click.echo(
        f"audit tree head: {head.size} entries, root {head.root}; signed by key {kid}. Keep it"
        " elsewhere: `audit verify --against FILE` and `audit prove --since FILE` check later"
        " heads against it.",
        err=True,
    )


@audit.command("prove")
@click.argument("seq", type=click.IntRange(min=1), required=False)
@click.option(
    "--since",
    "since_file",
    type=click.Path(dir_okay=False, exists=True),
    metavar="HEAD_FILE",
    help="Instead: prove that the current tree extends this kept tree head (consistency).",
)
@click.option(
    "--size",
    type=click.IntRange(min=1),
    help="Prove against the signed head of this many entries (default: the current one).",
)
@db_option
def audit_prove(seq: int | None, since_file: str | None, size: int | None, db_url: str) -> None:
    """Print, as JSON, RFC 9162's proof that entry SEQ is in the signed tree (inclusion), or
    with --since, that the signed tree extends a kept head (consistency). The proof is checked
    before it is printed; anyone can check it again with the head's public key and any RFC 9162
    implementation (docs/audit.md)."""
    if (seq is None) == (since_file is None):
        raise click.UsageError("give an entry number SEQ, or --since HEAD_FILE")
    with store(db_url) as stores:
        tree = AuditTree.of(stores)
        if seq is not None:
            proof, head = tree.prove(seq, size)
            leaf = leaf_of(proof.entry_hash)
            path = [bytes.fromhex(h) for h in proof.path]
            ok = merkle.verify_inclusion(
                proof.leaf, head.size, leaf, path, bytes.fromhex(head.root)
            )
            doc: dict[str, Any] = {
                "kind": "inclusion",
                "seq": proof.seq,
                "entry_hash": proof.entry_hash,
                "leaf_index": proof.leaf,
                "tree_size": head.size,
                "inclusion_path": list(proof.path),
            }
        else:
            assert since_file is not None
            old = kept_head(stores, since_file)
            if not isinstance(old, TreeHead):
                raise InvalidInput(
                    f"{since_file}: an entry head from before the tree; `audit verify --against`"
                    " checks it"
                )
            hashes, head = tree.consistency(old.size, size)
            ok = merkle.verify_consistency(
                old.size,
                head.size,
                bytes.fromhex(old.root),
                bytes.fromhex(head.root),
                [bytes.fromhex(h) for h in hashes],
            )
            doc = {
                "kind": "consistency",
                "first_tree_size": old.size,
                "first_root": old.root,
                "second_tree_size": head.size,
                "consistency_path": hashes,
            }
    if not ok:
        click.echo(
            "audit proof does NOT check out against the signed head: the tree was altered"
            " (`audit verify` says where)",
            err=True,
        )
        sys.exit(1)
    doc.update(root=head.root, head=head.token)
    click.echo(json.dumps(doc, sort_keys=True))


@audit.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--subject",
    help="Only entries about this device (id or IMEI), policy (id@version) or key (apikey:ID).",
)
@db_option
def audit_export(fmt: str, subject: str | None, db_url: str) -> None:
    """Write the audit trail to stdout as JSON Lines or CSV."""
    fields = [
        "seq",
        "at",
        "actor",
        "action",
        "subject",
        "reason",
        "details",
        "prev_hash",
        "hash",
        "content_digest",  # audit format v2 (docs/audit.md); empty for older entries
        "salt",
        "redacted",
        "shard",  # audit format v3 (docs/audit.md); empty for older entries (shard 0)
        "fmt",
    ]
    writer: Any = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(fields)
    with store(db_url) as stores:
        entries = (
            stores.audit.iter_all()
            if subject is None
            else audit_about(stores, device_subject(stores, subject))
        )
        for e in entries:
            row = e.to_json()
            if writer is not None:
                row["details"] = json.dumps(row["details"], sort_keys=True, ensure_ascii=False)
                writer.writerow([row.get(f) for f in fields])
            else:
                click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))


def device_subject(stores: Stores, subject: str) -> str:
    """The audit subject `subject` stands for: a device's id when it names a registered
    device by id or IMEI (entries about a device carry its id), itself otherwise."""
    found = stores.devices.get(subject)
    return found.record.id if found is not None else subject


def audit_about(stores: Stores, subject: str, batch: int = 5000) -> Iterator[AuditEntry]:
    """Every entry about `subject`, oldest first, read in pages."""
    after = 0
    while True:
        page = stores.audit.entries(after=after, subject=subject, limit=batch)
        yield from page
        if len(page) < batch:
            return
        after = page[-1].seq


@click.group()
def apikey() -> None:
    """Operator API keys: create (printed once), list, revoke."""


@apikey.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", required=True, help="Who or what uses the key.")
@db_option
def apikey_create(role: str, name: str, db_url: str) -> None:
    """Create a key. The token is printed once; only its hash is stored."""
    with store(db_url) as stores:
        key, token = Access.of(stores).create_apikey(
            name=name, role=Role(role), actor=actor(), now=datetime.now(UTC)
        )
    click.echo(token)
    click.echo(
        f"created {role} key {key.id} for {name!r}; store the token now, it is not shown again",
        err=True,
    )


@apikey.command("list")
@db_option
def apikey_list(db_url: str) -> None:
    """List keys (never their secrets)."""
    with store(db_url) as stores:
        keys = stores.apikeys.list()
    for k in keys:
        state = "revoked" if k.revoked_at else "active"
        when = datetime.fromtimestamp(k.created_at / 1000, UTC).isoformat(timespec="seconds")
        click.echo(f"{k.id}  {k.role.value:<8}  {state:<7}  {when}  {k.name}")


@apikey.command("revoke")
@click.argument("key_id")
@click.option("--reason", required=True)
@db_option
def apikey_revoke(key_id: str, reason: str, db_url: str) -> None:
    """Revoke a key at once."""
    with store(db_url) as stores:
        Access.of(stores).revoke_apikey(key_id, reason=reason, actor=actor(), now=datetime.now(UTC))
    click.echo(f"revoked {key_id}")


@click.group()
def keys() -> None:
    """The service's verdict-signing keys."""


@keys.command("rotate")
@click.option("--reason", required=True)
@db_option
def keys_rotate(reason: str, db_url: str) -> None:
    """Add a new signing key; the old one stays published until its tokens expire."""
    with store(db_url) as stores:
        new = Access.of(stores).rotate_signing_key(
            reason=reason, actor=actor(), now=datetime.now(UTC)
        )
    click.echo(f"new signing key {new.kid}")
    click.echo(
        "every service process signs with it from its next verdict on; the old key stays in"
        " the JWKS until the tokens it signed expire",
        err=True,
    )


@keys.command("list")
@db_option
def keys_list(db_url: str) -> None:
    """List signing keys (public ids and dates only)."""
    with store(db_url) as stores:
        ring = stores.keys.keyring(datetime.now(UTC))
    for k in sorted(ring.published(datetime.now(UTC), MAX_TOKEN_LIFETIME), key=lambda k: k.created):
        state = f"retired {k.retired.isoformat(timespec='seconds')}" if k.retired else "signing"
        click.echo(f"{k.kid}  created {k.created.isoformat(timespec='seconds')}  {state}")
