"""The local web app: a FastAPI server around the Colorizer, and one hand-made page.

Routes: ``/`` (the page), ``/static/*`` (its script and style), ``GET /api/info`` (models,
limits, which controls exist), ``POST /api/colorize`` (one photo -> the image, several ->
a ZIP), ``POST /api/colorize-video`` (a video -> MP4 or WebM) and ``GET /api/progress``
(frames done of the running video), and the color-points editing routes under ``/api/points/``
(see :mod:`chromalab.web.point_edits`). Nothing here reaches the internet: FastAPI's
interactive docs are switched off because they load their scripts from a CDN.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, AsyncIterator, Literal, Sequence
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask

from chromalab.errors import ChromalabError
from chromalab.web import jobs, point_edits
from chromalab.web.catalog import ModelChoice, build_catalog
from chromalab.web.limits import HostCheck, UploadLimit
from chromalab.web.worker import InferenceWorker, QueueFull, Stopping

try:  # video needs chromalab.inference.video; without it the page accepts photos only
    from chromalab.web import video_jobs
except ImportError:  # pragma: no cover - depends on the installation
    video_jobs = None  # type: ignore[assignment]

STATIC_DIR = Path(str(resources.files("chromalab.web") / "static"))
TEMP_PREFIX = "chromalab-web-"
# The sliders' ranges; the server accepts anything ColorControls.validate accepts.
CONTROL_RANGES = {
    "temperature": {"min": -1.0, "max": 1.0, "step": 0.05, "neutral": 0.0},
    "hue": {"min": -180.0, "max": 180.0, "step": 1.0, "neutral": 0.0},
    "saturation": {"min": 0.0, "max": 2.0, "step": 0.05, "neutral": 1.0},
}


def create_app(
    models: Sequence[str | Path] = (),
    models_dir: Path | None = None,
    max_upload_mb: int = 25,
    host: str = "127.0.0.1",
    max_queue: int | None = None,
    precision: str = "auto",
) -> FastAPI:
    """The app serving ``models`` (names or paths) plus the finished runs under ``models_dir``.

    Raises ChromalabError when a given model does not exist or there is nothing to serve.
    """
    models = list(models)
    models_dir = Path(models_dir) if models_dir is not None else None
    if max_upload_mb < 1:
        raise ChromalabError(f"--max-upload-mb must be at least 1, got {max_upload_mb}")
    if not build_catalog(models, models_dir):
        where = f" and no finished runs (model.safetensors) under {models_dir}" if models_dir else ""
        raise ChromalabError(
            f"no model to serve: no shipped model in this installation{where}; "
            "pass --model PATH (a model file or run folder)"
        )
    from chromalab.inference.precision import check_precision

    check_precision(precision)
    worker = InferenceWorker(precision=precision) if max_queue is None else InferenceWorker(max_queue=max_queue, precision=precision)
    progress = video_jobs.JobProgress() if video_jobs else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()

    app = FastAPI(title="chromalab", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.worker = worker
    edits = point_edits.EditStore()
    app.state.point_edits = edits
    app.add_middleware(UploadLimit, limit_mb=max_upload_mb)
    app.add_middleware(HostCheck, host=host)  # added last: runs first

    @app.exception_handler(QueueFull)
    async def busy(_request: Request, error: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": f"the server is busy: {error}"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(Stopping)
    async def stopping(_request: Request, error: Stopping) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def failed(_request: Request, error: Exception) -> JSONResponse:
        # A job cut short by shutdown can fail in other ways than Stopping (its executor or its
        # upload folder going away under it): during shutdown every failure is the 503 it is.
        if worker.stopping:
            return JSONResponse({"detail": "the server is shutting down"}, status_code=503,
                                headers={"Retry-After": "30"})
        return JSONResponse({"detail": f"internal error: {type(error).__name__}: {error}"}, status_code=500)

    def catalog() -> list[ModelChoice]:
        return build_catalog(models, models_dir)

    @app.exception_handler(RequestValidationError)
    async def one_line_validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        field = str(first.get("loc", ["request"])[-1])
        missing = {"images": "no photo uploaded", "image": "no photo uploaded", "video": "no video uploaded"}
        message = missing.get(field) or f"{field}: {first.get('msg', 'invalid')}"
        return JSONResponse({"detail": message}, status_code=400)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/info")
    async def info() -> dict:
        choices = catalog()
        return {
            "models": [{"id": c.id, "label": c.label, "kind": c.kind} for c in choices],
            "default_model": choices[0].id if choices else None,
            "max_upload_mb": max_upload_mb,
            "formats": list(jobs.FORMATS),
            "controls": CONTROL_RANGES if jobs.CONTROLS_AVAILABLE else None,
            "video": video_jobs is not None,
            "queued": worker.waiting,
        }

    @app.post("/api/colorize")
    async def colorize(
        images: Annotated[list[UploadFile], File(description="one or more photos")],
        colors: Annotated[ColorForm, Depends(color_form)],
        image_format: Annotated[Literal["png", "jpeg"], Form(alias="format")] = "png",
    ) -> Response:
        choice = _choose_model(catalog(), colors.model)
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as folder:
            uploads = [await _save(upload, Path(folder) / f"photo-{i}") for i, upload in enumerate(images)]
            settings = await colors.settings(Path(folder), image_format)
            try:
                results = await worker.run(jobs.colorize_uploads, worker, choice.path, uploads, settings)
            except jobs.ModelUnavailable as error:
                raise HTTPException(500, f"model {choice.id} cannot be loaded: {error}") from None
            except ChromalabError as error:  # BadImageError included: one line, the user's file name
                raise HTTPException(400, str(error)) from None
        # The temporary folder (uploads) is gone by now; only the encoded results remain.
        if len(results) == 1:
            result = results[0]
            return Response(result.data, media_type=result.media_type, headers={
                "Content-Disposition": _attachment(result.name),
                "X-Chromalab-Size": f"{result.width}x{result.height}",
                "X-Chromalab-Seconds": f"{result.seconds:.3f}",
                "X-Chromalab-Model": quote(choice.id),
            })
        return Response(jobs.zip_results(results), media_type="application/zip",
                        headers={"Content-Disposition": _attachment("colorized.zip")})

    @app.get("/api/progress")
    async def progress_of_video() -> dict:
        """The running video job's frames done and total (empty when none runs)."""
        return progress.snapshot() if progress else {}

    @app.post("/api/colorize-video")
    async def colorize_video(
        video: Annotated[UploadFile, File(description="a video file")],
        colors: Annotated[ColorForm, Depends(color_form)],
        temporal: Annotated[bool, Form()] = True,
    ) -> Response:
        if video_jobs is None or progress is None:
            raise HTTPException(404, "video is not available in this installation")
        choice = _choose_model(catalog(), colors.model)
        # A video result can be large: it is streamed from the temporary folder, which is
        # removed once the response has been sent (or at once on an error).
        folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        try:
            upload = await _save(video, folder / "upload")
            settings = await colors.settings(folder)
            result = await worker.run(video_jobs.colorize_video_upload, worker, choice.path, upload,
                                      settings, temporal, folder, progress)
        except jobs.ModelUnavailable as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(500, f"model {choice.id} cannot be loaded: {error}") from None
        except ChromalabError as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(400, str(error)) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            result.path, media_type=result.media_type,
            headers={
                "Content-Disposition": _attachment(result.name),
                "X-Chromalab-Size": f"{result.width}x{result.height}",
                "X-Chromalab-Frames": str(result.frames),
                "X-Chromalab-Seconds": f"{result.seconds:.3f}",
            },
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    @app.post("/api/points/edit")
    async def open_points_edit(
        image: Annotated[UploadFile, File(description="one photo")],
        colors: Annotated[ColorForm, Depends(color_form)],
    ) -> dict:
        """Decode the photo and run the network once; renders with points then reuse both."""
        choice = _choose_model(catalog(), colors.model)
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as folder:
            upload = await _save(image, Path(folder) / "photo")
            settings = await colors.settings(Path(folder))
            try:
                return await worker.run(point_edits.open_edit, worker, edits, choice.path, choice.id,
                                        upload, settings)
            except jobs.ModelUnavailable as error:
                raise HTTPException(500, f"model {choice.id} cannot be loaded: {error}") from None
            except ChromalabError as error:
                raise HTTPException(400, str(error)) from None

    @app.post("/api/points/render")
    async def render_points(request: Request) -> Response:
        """The edit's photo with the given points; an outdated ``seq`` is answered 409 unrendered."""
        try:
            order = point_edits.parse_render((await request.body()).decode("utf-8", "replace"))
            point_edits.check_order(edits, order)
            pending = worker.submit(point_edits.render, edits, order)  # QueueFull: 503, nothing recorded
            edits.queued(order.edit, order.seq)  # older renders still queued are now dropped
            rendered = await pending
        except point_edits.Outdated as error:
            return JSONResponse({"detail": str(error)}, status_code=409)
        except point_edits.EditGone as error:
            raise HTTPException(404, str(error)) from None
        except ChromalabError as error:
            raise HTTPException(400, str(error)) from None
        return Response(rendered.data, media_type=rendered.media_type, headers={
            "Content-Disposition": _attachment(rendered.name),
            "X-Chromalab-Size": f"{rendered.width}x{rendered.height}",
            "X-Chromalab-Photo-Size": f"{rendered.photo_width}x{rendered.photo_height}",
            "X-Chromalab-Seconds": f"{rendered.seconds:.4f}",
            "X-Chromalab-Seq": "" if order.seq is None else str(order.seq),
        })

    @app.get("/api/points/color")
    async def points_model_color(edit: str, x: float, y: float) -> dict:
        """The model's own color at photo pixel (x, y): the page's first offer for a new point."""
        try:
            return await worker.run(point_edits.model_color, edits, edit, x, y)
        except point_edits.EditGone as error:
            raise HTTPException(404, str(error)) from None
        except ChromalabError as error:
            raise HTTPException(400, str(error)) from None

    @app.delete("/api/points/edit/{edit_id}", status_code=204)
    async def close_points_edit(edit_id: str) -> Response:
        """Free an edit now (the page does when it opens a newer one or drops the photo)."""
        edits.remove(edit_id)
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


@dataclass(frozen=True)
class ColorForm:
    """The form fields every colorizing request shares: the model and the creative controls."""

    model: str
    temperature: float
    hue: float
    saturation: float
    reference: UploadFile | None

    async def settings(self, folder: Path, image_format: str | None = None) -> jobs.Settings:
        """The job's settings, the reference photo saved into the request's ``folder``."""
        saved = await _save(self.reference, folder / "reference") if self.reference else None
        if image_format is None:
            return jobs.Settings(self.temperature, self.hue, self.saturation, saved)
        return jobs.Settings(self.temperature, self.hue, self.saturation, saved, image_format)


def color_form(
    model: Annotated[str, Form()] = "",
    temperature: Annotated[float, Form()] = 0.0,
    hue: Annotated[float, Form()] = 0.0,
    saturation: Annotated[float, Form()] = 1.0,
    reference: Annotated[UploadFile | None, File()] = None,
) -> ColorForm:
    return ColorForm(model, temperature, hue, saturation, reference)


def _choose_model(choices: list[ModelChoice], model_id: str) -> ModelChoice:
    if not model_id:
        if not choices:
            raise HTTPException(400, "no model available")
        return choices[0]
    for choice in choices:
        if choice.id == model_id:
            return choice
    raise HTTPException(400, f"unknown model {model_id!r}; reload the page for the current list")


async def _save(upload: UploadFile, path: Path) -> jobs.Upload:
    """Copy an upload into the request's temporary folder (open_rgb reads files by path)."""
    def copy() -> None:
        upload.file.seek(0)
        with path.open("wb") as handle:
            shutil.copyfileobj(upload.file, handle)

    await run_in_threadpool(copy)
    return jobs.Upload(path, upload.filename or path.name)


def _attachment(filename: str) -> str:
    """Content-Disposition for any file name (RFC 6266: ASCII fallback + UTF-8 version)."""
    fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"

