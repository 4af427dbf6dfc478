"""``oct-srgan serve``: the local web page to enhance a scan or check the model on it."""

from __future__ import annotations

import typer

from oct_srgan.limits import DEFAULT_TILE, SERVE_MAX_PIXELS
from oct_srgan.pipelines.common import user_errors
from oct_srgan.pipelines.options import SHIPPED_NAMES, max_pixels_option, port_option, positive_finite, tile_option, warn_if_exposed

app = typer.Typer(add_completion=False)


def _host_names(host: str) -> list[str]:
    """Host names the page may be opened under: the bound name, and this machine's name when bound to all."""
    import socket

    names = [host]
    if host in ("0.0.0.0", "::", ""):
        names += [socket.gethostname(), socket.getfqdn()]
    return names


@app.command()
@user_errors(keep_memory=False)
def serve(
    model: str = typer.Option("default", "--model", "-m", help="Checkpoint, generator file, runs:/… or models:/… URI, or a shipped model: " + SHIPPED_NAMES + "."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = port_option(8000, help="Port to listen on (0 = any free port)."),
    max_upload_mb: float = typer.Option(200, "--max-upload-mb", callback=positive_finite, help="Largest accepted upload, in MB."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    tile: int = tile_option(DEFAULT_TILE, help="Tile side in LR pixels (0 = whole B-scans: faster, more memory)."),
    max_pixels: int = max_pixels_option(SERVE_MAX_PIXELS, help="Largest decoded upload (samples over all B-scans); 0 = no limit."),
) -> None:
    """Serve a page to upload a scan and compare input | bicubic | SR, or score the model on it."""
    from oct_srgan import serving
    from oct_srgan.devices import resolve_device

    web_app = serving.create_app(model, max_upload_mb=max_upload_mb, device=resolve_device(device),
                                   tile=tile, max_pixels=max_pixels or None, allowed_hosts=_host_names(host))
    sock = serving.listen(host, port)
    loaded = web_app.state.service.model.loaded
    typer.echo(f"oct-srgan serve: model {loaded.source} (x{loaded.scale}) at {serving.address(sock)}  (Ctrl+C to stop)")
    warn_if_exposed(host, "the review page", "upload scans and download the results")
    serving.run(web_app, sock)
