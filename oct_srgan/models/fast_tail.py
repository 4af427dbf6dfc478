"""The paper generator's 9x9 HR tail computed at 2x resolution: the same sums, several times faster.

In the paper layout the last stage is conv3x3 (C -> 4C) at 2x, PixelShuffle(2), PReLU, then a 9x9
conv C -> 1 at HR. A one-output-channel conv runs at a few percent of oneDNN's conv speed on CPU,
and the C-channel HR map it reads is the largest tensor of the net. PReLU with one slope commutes
with the shuffle, so the 9x9 HR conv is rewritten as a 5x5 conv at 2x resolution from the 4C
unshuffled channels to 4 sub-pixel outputs, followed by PixelShuffle(2) of those few channels (zero
weights where a 5x5 tap falls outside the 9x9 kernel). The 5x5 kernel is gathered from the 9x9
weight on every call, so training updates the paper's own parameter and checkpoints keep its shape.

On the CPU a conv with 4 outputs wastes most of oneDNN's 16-wide output blocks, so there the same
sums run as a stride-2 6x6 conv to 16 outputs, the 4 x 4 HR sub-pixels of each LR cell, followed by
PixelShuffle(4) (1.44x the multiply-adds, yet faster: ``bench/train_step.py``), or,
for fp32 inference, as :func:`shifted_sum_conv`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SHUFFLE = 2


def _blank_index(outputs: int, out_channels: int, channels: int, k: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An index [outputs*out, 4*C, size, size] pointing at the trailing zero everywhere, and the
    offset of each (out, C) pair's k x k block in the flat weight."""
    zero = out_channels * channels * k * k
    index = torch.full((out_channels * outputs, channels * 4, size, size), zero, dtype=torch.long)
    base = (torch.arange(out_channels).view(-1, 1) * channels + torch.arange(channels).view(1, -1)) * k * k
    return index, base


def subpixel_index(out_channels: int, channels: int, kernel_size: int) -> torch.Tensor:
    """Indices into ``cat(weight.flatten(), [0])`` that give the [4*out, 4*C, k', k'] sub-pixel kernel.

    Output channel ``o*4 + i*2 + j`` is HR sub-pixel (i, j); input channel ``c*4 + a*2 + b`` is
    PixelShuffle's (channel c, sub-pixel (a, b)). HR tap d of sub-pixel i reading sub-pixel a of
    2x-cell offset e satisfies d = 2e + a - i (e counted from -radius); taps outside the kernel
    point at the trailing zero.
    """
    k = kernel_size
    half = k // 2
    radius = (half + 1) // 2
    size = 2 * radius + 1
    index, base = _blank_index(4, out_channels, channels, k, size)
    for i in range(SHUFFLE):
        for j in range(SHUFFLE):
            for a in range(SHUFFLE):
                for b in range(SHUFFLE):
                    for e in range(size):
                        for f in range(size):
                            di = SHUFFLE * (e - radius) + a - i + half
                            dj = SHUFFLE * (f - radius) + b - j + half
                            if 0 <= di < k and 0 <= dj < k:
                                index[i * 2 + j :: 4, a * 2 + b :: 4, e, f] = base + di * k + dj
    return index


def strided_index(out_channels: int, channels: int, kernel_size: int) -> torch.Tensor:
    """Indices into ``cat(weight.flatten(), [0])`` that give the [16*out, 4*C, K, K] stride-2 kernel.

    Applied with stride 2 and padding ``(K - 2) // 2`` to the 2x map (channels as in
    :func:`subpixel_index`), output channel ``o*16 + i*4 + j`` is HR sub-pixel (i, j) of the LR
    cell, PixelShuffle(4)'s order. HR tap d of sub-pixel i reads HR row i + d, which lies in 2x row
    (i + d) // 2 of the cell's window, sub-pixel (i + d) % 2.
    """
    k = kernel_size
    half = k // 2
    pad = (half + 1) // 2
    index, base = _blank_index(16, out_channels, channels, k, 2 * pad + 2)
    for i in range(4):
        for j in range(4):
            for dy in range(-half, half + 1):
                row, a = divmod(i + dy, SHUFFLE)
                for dx in range(-half, half + 1):
                    col, b = divmod(j + dx, SHUFFLE)
                    index[i * 4 + j :: 16, a * 2 + b :: 4, row + pad, col + pad] = base + (dy + half) * k + dx + half
    return index


def subpixel_kernel(weight: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """The kernel ``index`` gathers from ``weight`` [out, C, k, k] (default: the 5x5 sub-pixel one)."""
    if index is None:
        out_channels, channels, k, _ = weight.shape
        index = subpixel_index(out_channels, channels, k).to(weight.device)
    flat = torch.cat([weight.reshape(-1), weight.new_zeros(1)])
    return flat[index.contiguous()]


def subpixel_tail(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  index: torch.Tensor, stride2_index: torch.Tensor) -> torch.Tensor:
    """The HR conv ``(weight, bias)`` applied to PixelShuffle(2)(x), computed at x's resolution.

    ``index`` is :func:`subpixel_index`'s and ``stride2_index`` :func:`strided_index`'s for ``weight``.
    """
    on_cpu = x.device.type == "cpu"
    fp32_inference = x.dtype == torch.float32 and not torch.is_grad_enabled() and not (
        on_cpu and torch.is_autocast_enabled("cpu"))
    whole_cells = x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0  # always at x4, not always at x2
    if on_cpu and not fp32_inference and whole_cells:
        kernel = subpixel_kernel(weight, stride2_index)
        bias16 = bias.repeat_interleave(16) if bias is not None else None
        return F.pixel_shuffle(F.conv2d(x, kernel, bias16, stride=2, padding=(kernel.shape[-1] - 2) // 2), 4)
    kernel = subpixel_kernel(weight, index)
    bias4 = bias.repeat_interleave(SHUFFLE * SHUFFLE) if bias is not None else None
    if on_cpu and fp32_inference:
        return F.pixel_shuffle(shifted_sum_conv(x, kernel, bias4), SHUFFLE)
    return F.pixel_shuffle(F.conv2d(x, kernel, bias4, padding=kernel.shape[-1] // 2), SHUFFLE)


def shifted_sum_conv(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(x, kernel, bias, padding=k // 2)`` for a kernel with few outputs, as one 1x1 conv to
    ``k * k * out`` channels (one group of ``out`` per tap) and ``k * k`` shifted additions.

    In fp32 oneDNN runs a conv with 4 output channels at about a fifth of its speed and a 1x1 conv
    with 100 at nearly full speed. The tap maps stay channels-last, as the 1x1 conv writes them:
    each tap adds its overlapping window into a channels-last output, so no layout change or padded
    copy of the maps is made (that copying took as long as the conv). Accumulated in fp32; used for
    fp32 inference only (in bf16 the maps' rounding adds error and the stride-2 form is faster;
    training would keep every tap's map for the backward pass).
    """
    out_ch, _, k, _ = kernel.shape
    n, _, h, w = x.shape
    pad = k // 2
    taps = kernel.permute(2, 3, 0, 1).reshape(k * k * out_ch, -1, 1, 1)
    z = F.conv2d(x, taps.contiguous(memory_format=torch.channels_last))
    maps = z.permute(0, 2, 3, 1).reshape(n, h, w, k, k, out_ch)
    out = torch.zeros(n, h, w, out_ch, dtype=torch.float32, device=x.device)
    if bias is not None:
        out += bias.float()
    for e in range(k):
        dy = e - pad
        rows_out, rows_in = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h + min(0, dy))
        for f in range(k):
            dx = f - pad
            cols_out, cols_in = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w + min(0, dx))
            out[:, rows_out, cols_out] += maps[:, rows_in, cols_in, e, f]
    return out.permute(0, 3, 1, 2).to(z.dtype)
