"""`CloudStorage`: segments in an S3 bucket through aioboto3, run on Trio via trio-asyncio.

Strategy: one aiobotocore client per store, entered in `open()` inside a trio-asyncio loop (the caller's when one
is running, else our own). Every S3 call goes through `_call`: a `trio.CapacityLimiter` bounds concurrent
requests; transient failures (connection refused or reset, timeouts, 5xx, throttling) are retried with
exponential backoff; credential and bucket errors are not retried and come out as a clear `TierError`.

Uploads: files up to `multipart_threshold` go in one PUT; larger ones as a multipart upload of `part_size`
parts sent concurrently, each part retried by itself; an upload the server forgot (NoSuchUpload after a restart)
is started again, and a failed one is aborted so no parts are left billed. Integrity: the segment's sha256 is
stored as object metadata (`x-amz-meta-sha256`, checked on every download) and the returned ETag is compared
with the MD5 (single PUT) or MD5-of-part-MD5s (`-N` multipart) computed locally, so the server is known to have
received every byte before the index records the copy.

Endpoints and addressing (`endpoint`, `region`, `addressing_style`):

* AWS S3: `https://s3.<region>.amazonaws.com`, region e.g. `eu-west-1`, `virtual` (path style is deprecated).
* Aliyun OSS: `https://oss-<region>.aliyuncs.com` (e.g. `oss-cn-hangzhou`), region `cn-hangzhou`, `virtual`
  (OSS refuses path-style requests).
* Tencent COS: `https://cos.<region>.myqcloud.com`, region e.g. `ap-guangzhou`, bucket `<name>-<appid>`,
  `virtual`.
* MinIO / SeaweedFS / Ceph RGW: `http://host:port`, region `us-east-1` (any), `path`.

botocore's default trailing CRC checksums (aws-chunked bodies) are switched to "when required": several
S3-compatible servers reject them, and integrity is covered by the ETag check and the sha256 metadata.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

from ._stores import COPY_CHUNK, BlobInfo, TierError

__all__ = ["DEFAULT_PART_SIZE", "CloudStorage"]

#: Multipart part size (S3 allows 5 MiB to 5 GiB per part, 10 000 parts).
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: Concurrent S3 requests per store.
DEFAULT_MAX_CONCURRENCY = 8

# Error codes that retrying cannot fix: wrong keys, no access, no bucket.
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}
_FATAL_CODES = {"NoSuchBucket", "InvalidBucketName", "InvalidArgument", "EntityTooLarge", "InvalidRequest"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}


class _NoSuchUpload(Exception):
    pass


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _multipart_etag(md5s: list[bytes]) -> str:
    return f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"


class CloudStorage:
    """An S3 bucket (AWS S3, Aliyun OSS, Tencent COS, MinIO, SeaweedFS) as a segment store.

    Use `async with CloudStorage(...) as s3:` (the trio-asyncio loop and the client live inside it), or call
    `open()` / `aclose()` in one task, properly nested with other context managers.

    Args:
        endpoint: the S3 endpoint URL (see the module docstring per provider).
        bucket: the bucket.
        region: the signing region.
        access_key: access key id.
        secret_key: secret access key.
        prefix: key prefix inside the bucket (e.g. `"site-a/"`).
        addressing_style: `"path"` (MinIO, SeaweedFS) or `"virtual"` (AWS, OSS, COS).
        name: backend name in the index.
        part_size: multipart part size in bytes.
        multipart_threshold: files larger than this use multipart.
        max_concurrency: concurrent S3 requests (a `trio.CapacityLimiter`).
        max_retries: retries of one request on transient errors.
        backoff_initial: first retry delay in seconds, doubled each retry up to `backoff_max`.
        backoff_max: longest retry delay.
        connect_timeout: seconds to connect.
        read_timeout: seconds to wait for a response.
        create_bucket: create the bucket in `open()` when it is missing.
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        region: str = "us-east-1",
        access_key: str,
        secret_key: str,
        prefix: str = "",
        addressing_style: str = "path",
        name: str = "s3",
        part_size: int = DEFAULT_PART_SIZE,
        multipart_threshold: int = DEFAULT_PART_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_retries: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        create_bucket: bool = False,
    ) -> None:
        if addressing_style not in ("path", "virtual", "auto"):
            raise ValueError(f"addressing_style must be 'path' or 'virtual', not {addressing_style!r}")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (S3's minimum part size)")
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.prefix = prefix
        self.addressing_style = addressing_style
        self.name = name
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.create_bucket = create_bucket
        self._access_key = access_key
        self._secret_key = secret_key
        self._timeouts = (connect_timeout, read_timeout)
        self.limiter = trio.CapacityLimiter(max_concurrency)
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        #: Retries done so far (transient errors survived), for tests and metrics.
        self.retries = 0

    def __repr__(self) -> str:
        return f"CloudStorage({self.endpoint!r}, {self.bucket!r}, prefix={self.prefix!r}, name={self.name!r})"

    # -- life cycle --------------------------------------------------------------------------------------------

    async def open(self) -> None:
        import aioboto3
        from botocore.config import Config

        stack = contextlib.AsyncExitStack()
        try:
            if trio_asyncio.current_loop.get() is None:
                await stack.enter_async_context(trio_asyncio.open_loop())
            config = Config(
                s3={"addressing_style": self.addressing_style},
                connect_timeout=self._timeouts[0],
                read_timeout=self._timeouts[1],
                retries={"max_attempts": 1, "mode": "standard"},  # our own retry loop, with our backoff
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=max(10, int(self.limiter.total_tokens) * 2),
            )
            session = aioboto3.Session()
            self._client = await stack.enter_async_context(
                aio_as_trio(
                    session.client(
                        "s3",
                        endpoint_url=self.endpoint,
                        region_name=self.region,
                        aws_access_key_id=self._access_key,
                        aws_secret_access_key=self._secret_key,
                        config=config,
                    )
                )
            )
            if self.create_bucket:
                try:
                    await self._call("head bucket", self._client.head_bucket, Bucket=self.bucket)
                except TierError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
                    await self._call("create bucket", self._client.create_bucket, Bucket=self.bucket)
            else:
                await self._call("head bucket", self._client.head_bucket, Bucket=self.bucket)
        except BaseException:
            self._client = None
            await stack.aclose()
            raise
        self._stack = stack

    async def aclose(self) -> None:
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the request wrapper -----------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return self.prefix + key

    def _classify(self, what: str, exc: BaseException) -> tuple[bool, TierError]:
        """(retry?, the error to raise) for an exception from aiobotocore."""
        code = _error_code(exc)
        where = f"{self.name} ({self.endpoint}, bucket {self.bucket})"
        if code in _AUTH_CODES:
            return False, TierError(
                errno.EACCES, f"{where}: {what}: credentials rejected ({code}): check access_key / secret_key"
            )
        if code in _NOT_FOUND or code == "NoSuchBucket":
            return False, TierError(errno.ENOENT, f"{where}: {what}: not found ({code})")
        if code in _FATAL_CODES:
            return False, TierError(errno.EIO, f"{where}: {what}: refused ({code}): {exc}")
        return True, TierError(errno.EIO, f"{where}: {what} failed: {type(exc).__name__}: {exc}")

    async def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        if self._client is None:
            raise TierError(errno.EBADF, f"{self.name}: CloudStorage is not open")
        delay = self.backoff_initial
        attempt = 0
        while True:
            try:
                async with self.limiter:
                    return await aio_as_trio(fn)(**kwargs)
            except trio.Cancelled:
                raise
            except Exception as exc:
                if _error_code(exc) == "NoSuchUpload":
                    raise _NoSuchUpload() from exc
                retry, error = self._classify(what, exc)
                if not retry or attempt >= self.max_retries:
                    raise error from exc
            attempt += 1
            self.retries += 1
            await trio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    # -- BlobStore ---------------------------------------------------------------------------------------------

    def local_path(self, key: str) -> Path | None:
        return None

    async def put_file(self, key: str, path: Path, *, size: int, sha256: str, metadata: Mapping[str, str]) -> None:
        meta = {"sha256": sha256, **{k: str(v) for k, v in metadata.items()}}
        if size <= self.multipart_threshold:
            data = await trio.to_thread.run_sync(Path(path).read_bytes)
            if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                raise TierError(errno.EIO, f"{self.name}: {key}: source changed while uploading")
            md5 = hashlib.md5(data)
            response = await self._call(
                f"put {key}",
                self._client.put_object,
                Bucket=self.bucket,
                Key=self._object_key(key),
                Body=data,
                Metadata=meta,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
                ContentType="video/mp4",
            )
            self._check_etag(key, response.get("ETag"), md5.hexdigest())
            return
        for _attempt in range(3):
            try:
                await self._multipart(key, Path(path), size, meta)
                return
            except _NoSuchUpload:
                continue  # the server restarted and forgot the upload: start it again
        raise TierError(errno.EIO, f"{self.name}: {key}: the server kept losing the multipart upload")

    def _check_etag(self, key: str, etag: str | None, expected: str) -> None:
        got = (etag or "").strip('"')
        if got and got != expected:
            raise TierError(errno.EIO, f"{self.name}: {key}: upload corrupted (ETag {got}, expected {expected})")

    async def _multipart(self, key: str, path: Path, size: int, meta: dict[str, str]) -> None:
        object_key = self._object_key(key)
        created = await self._call(
            f"create multipart {key}",
            self._client.create_multipart_upload,
            Bucket=self.bucket,
            Key=object_key,
            Metadata=meta,
            ContentType="video/mp4",
        )
        upload_id = created["UploadId"]
        count = (size + self.part_size - 1) // self.part_size
        etags: list[str | None] = [None] * count
        md5s: list[bytes] = [b""] * count
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        # Parts in memory at once: as many as requests may run, so a big file is never read whole.
        in_memory = trio.Semaphore(max(1, int(self.limiter.total_tokens)))
        try:

            async def _part(number: int) -> None:
                offset = (number - 1) * self.part_size
                length = min(self.part_size, size - offset)
                async with in_memory:
                    data = await trio.to_thread.run_sync(os.pread, fd, length, offset)
                    if len(data) != length:
                        raise TierError(errno.EIO, f"{self.name}: {key}: source shrank while uploading")
                    digest = hashlib.md5(data).digest()
                    response = await self.upload_part(
                        key=key, object_key=object_key, upload_id=upload_id, number=number, data=data, md5=digest
                    )
                    del data
                self._check_etag(f"{key} part {number}", response.get("ETag"), digest.hex())
                etags[number - 1] = response["ETag"]
                md5s[number - 1] = digest

            async with trio.open_nursery() as nursery:
                for number in range(1, count + 1):
                    nursery.start_soon(_part, number)
            response = await self._call(
                f"complete multipart {key}",
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]},
            )
            self._check_etag(key, response.get("ETag"), _multipart_etag(md5s))
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(10), contextlib.suppress(Exception):
                await aio_as_trio(self._client.abort_multipart_upload)(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id
                )
            raise
        finally:
            os.close(fd)

    async def upload_part(
        self, *, key: str, object_key: str, upload_id: str, number: int, data: bytes, md5: bytes
    ) -> dict[str, Any]:
        """Upload one part (retried); a separate method so tests can inject a server crash between parts."""
        response: dict[str, Any] = await self._call(
            f"upload {key} part {number}",
            self._client.upload_part,
            Bucket=self.bucket,
            Key=object_key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ContentMD5=base64.b64encode(md5).decode(),
        )
        return response

    async def stat(self, key: str) -> BlobInfo | None:
        try:
            head = await self._call(
                f"head {key}", self._client.head_object, Bucket=self.bucket, Key=self._object_key(key)
            )
        except TierError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        meta = dict(head.get("Metadata") or {})
        sha = meta.pop("sha256", None)
        return BlobInfo(key=key, size=int(head["ContentLength"]), sha256=sha, metadata=meta)

    async def fetch(self, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.fetch")
        delay = self.backoff_initial
        for attempt in range(self.max_retries + 1):
            try:
                expected = await self._download(key, tmp)
                break
            except TierError as exc:
                if exc.errno in (errno.ENOENT, errno.EACCES) or attempt >= self.max_retries:
                    raise
                self.retries += 1
                await trio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
        actual = await trio.to_thread.run_sync(_sha256_of, tmp)
        if expected is not None and actual != expected:
            tmp.unlink()
            raise TierError(errno.EIO, f"{self.name}: {key}: checksum mismatch on download ({actual} != {expected})")
        os.rename(tmp, dest)

    async def _download(self, key: str, tmp: Path) -> str | None:
        obj = await self._call(f"get {key}", self._client.get_object, Bucket=self.bucket, Key=self._object_key(key))
        expected = (obj.get("Metadata") or {}).get("sha256")
        try:
            body = obj["Body"]
            try:
                with open(tmp, "wb") as f:  # noqa: ASYNC230 - chunk writes go through a worker thread below
                    while chunk := await aio_as_trio(body.read)(COPY_CHUNK):
                        await trio.to_thread.run_sync(f.write, chunk)
                    await trio.to_thread.run_sync(os.fsync, f.fileno())
            finally:
                body.close()
        except trio.Cancelled:
            raise
        except TierError:
            raise
        except Exception as exc:
            raise self._classify(f"get {key}", exc)[1] from exc
        return expected

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (an HTTP Range request): what playback needs to seek in a remote segment."""
        if length <= 0:
            return b""
        obj = await self._call(
            f"get {key} range",
            self._client.get_object,
            Bucket=self.bucket,
            Key=self._object_key(key),
            Range=f"bytes={offset}-{offset + length - 1}",
        )
        try:
            async with aio_as_trio(obj["Body"]) as body:
                data: bytes = await aio_as_trio(body.read)()
        except trio.Cancelled:
            raise
        except Exception as exc:
            raise self._classify(f"get {key} range", exc)[1] from exc
        return data

    async def delete(self, key: str) -> None:
        await self._call(f"delete {key}", self._client.delete_object, Bucket=self.bucket, Key=self._object_key(key))

    async def list_blobs(self) -> list[BlobInfo]:
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call("list", self._client.list_objects_v2, **kwargs)
            keys += [c["Key"][len(self.prefix) :] for c in page.get("Contents", []) if c["Key"].endswith(".mp4")]
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        out: list[BlobInfo | None] = [None] * len(keys)

        async def _one(i: int, key: str) -> None:
            out[i] = await self.stat(key)

        async with trio.open_nursery() as nursery:
            for i, key in enumerate(keys):
                nursery.start_soon(_one, i, key)
        return [b for b in out if b is not None]


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
