"""Azurite (npm `azurite`), Microsoft's blob storage emulator, as the emulator's blob store."""

import datetime
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# The well-known development storage key (public, documented by Microsoft for Azurite).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CACHE_BIN = Path.home() / ".cache" / "mlrun-azurite" / "node_modules" / ".bin" / "azurite-blob"


def find_binary() -> str:
    """$AZURITE_BLOB, then the CI cache (.ci/run installs there), then PATH."""
    for candidate in (os.environ.get("AZURITE_BLOB"), str(CACHE_BIN), shutil.which("azurite-blob")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "azurite-blob not found: set AZURITE_BLOB, or run "
        "`npm install --prefix ~/.cache/mlrun-azurite azurite@3.37.0` (as .ci/run does)"
    )


class Azurite:
    def __init__(self, folder: Path, cert: Path, key: Path, port: int):
        self.folder, self.port, self.cert = folder, port, cert
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [
            find_binary(),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--location",
            str(folder),
            "--skipApiVersionCheck",
            "--silent",
            "--debug",
            str(folder / "debug.log"),
        ]
        self.log = open(folder / "azurite.log", "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        """IP-style account URL (the one SAS URLs use)."""
        return f"https://127.0.0.1:{self.port}/{ACCOUNT}"

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"azurite exited with {self.proc.returncode}: "
                    f"{(self.folder / 'azurite.log').read_text()[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"azurite did not listen on {self.port} within {timeout}s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)  # nothing to flush: SQLite/Azurite writes are already durable
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    # --- blob helpers (the emulator's own access uses the account key) ---
    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.url,
            credential={"account_name": ACCOUNT, "account_key": KEY},
            connection_verify=str(self.cert),
        )

    def ensure_container(self, name: str):
        from azure.core.exceptions import ResourceExistsError

        try:
            self.service().create_container(name)
        except ResourceExistsError:
            pass

    def container_sas_url(self, container: str, write=True, hours=24) -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        perm = ContainerSasPermissions(
            read=True, write=write, create=write, add=write, list=True, delete=write
        )
        sas = generate_container_sas(
            ACCOUNT,
            container,
            account_key=KEY,
            permission=perm,
            expiry=_utcnow() + datetime.timedelta(hours=hours),
        )
        return f"{self.url}/{container}?{sas}"

    def blob_sas_url(self, container: str, blob: str, hours=24) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        sas = generate_blob_sas(
            ACCOUNT,
            container,
            blob,
            account_key=KEY,
            permission=BlobSasPermissions(read=True),
            expiry=_utcnow() + datetime.timedelta(hours=hours),
        )
        return f"{self.url}/{container}/{blob}?{sas}"

    def upload(self, container: str, blob: str, data: bytes):
        self.service().get_blob_client(container, blob).upload_blob(data, overwrite=True)

    def download_blob(self, container: str, blob: str, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(
            self.service().get_blob_client(container, blob).download_blob().readall()
        )
        return target

    def download_prefix(self, container: str, prefix: str, dest: Path) -> list[Path]:
        """Download every blob under prefix into dest, keeping the path below prefix."""
        client = self.service().get_container_client(container)
        prefix = prefix.strip("/")
        written = []
        for blob in client.list_blobs(name_starts_with=prefix or None):
            rel = blob.name[len(prefix) :].lstrip("/") if prefix else blob.name
            if not rel:  # the prefix names a single blob
                rel = Path(blob.name).name
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.download_blob(blob.name).readall())
            written.append(target)
        return written

    def names_under(self, url: str) -> list[str]:
        """The blobs under a blob URL (`https://HOST/ACCOUNT/CONTAINER/PREFIX`, as a code
        version's codeUri), named relative to it; none when the container does not exist."""
        from urllib.parse import unquote, urlsplit

        from azure.core.exceptions import ResourceNotFoundError

        _, container, prefix = (unquote(urlsplit(url).path).strip("/").split("/", 2) + ["", ""])[:3]
        client = self.service().get_container_client(container)
        start = f"{prefix}/" if prefix else ""
        try:
            return [b.name[len(start) :] for b in client.list_blobs(name_starts_with=start or None)]
        except ResourceNotFoundError:
            return []


def _utcnow():
    return datetime.datetime.now(datetime.UTC)
