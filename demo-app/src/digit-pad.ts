/**
 * A drawing pad for one handwritten digit and MNIST-style preprocessing: the ink's bounding box is
 * scaled to fit 20x20 pixels (keeping its aspect ratio) and placed on a 28x28 image so that its
 * centre of mass lies at the centre, with intensities in [0, 1] (1 = ink), like the MNIST digits.
 */
export const IMAGE_SIZE = 28;
export const PIXEL_COUNT = IMAGE_SIZE * IMAGE_SIZE;
const FIT_BOX = 20;

export class DigitPad {
  private readonly context: CanvasRenderingContext2D;
  private drawing = false;
  private lastPoint: { x: number; y: number } | null = null;
  private inked = false;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly onChange: () => void,
  ) {
    const context = canvas.getContext('2d', { willReadFrequently: true });
    if (!context) throw new Error('2D canvas is not available');
    this.context = context;
    canvas.addEventListener('pointerdown', (event) => this.start(event));
    canvas.addEventListener('pointermove', (event) => this.move(event));
    for (const type of ['pointerup', 'pointercancel', 'pointerleave'] as const) canvas.addEventListener(type, () => this.end());
  }

  get isEmpty(): boolean {
    return !this.inked;
  }

  clear(): void {
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.inked = false;
    this.onChange();
  }

  private point(event: PointerEvent): { x: number; y: number } {
    const rect = this.canvas.getBoundingClientRect();
    return { x: ((event.clientX - rect.left) / rect.width) * this.canvas.width, y: ((event.clientY - rect.top) / rect.height) * this.canvas.height };
  }

  private start(event: PointerEvent): void {
    this.drawing = true;
    this.canvas.setPointerCapture(event.pointerId);
    this.lastPoint = this.point(event);
    this.stroke(this.lastPoint, this.lastPoint);
  }

  private move(event: PointerEvent): void {
    if (!this.drawing || !this.lastPoint) return;
    const next = this.point(event);
    this.stroke(this.lastPoint, next);
    this.lastPoint = next;
  }

  private end(): void {
    this.drawing = false;
    this.lastPoint = null;
  }

  private stroke(from: { x: number; y: number }, to: { x: number; y: number }): void {
    const context = this.context;
    context.strokeStyle = '#ffffff';
    context.lineWidth = this.canvas.width / 14;
    context.lineCap = 'round';
    context.lineJoin = 'round';
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x + 0.01, to.y);
    context.stroke();
    this.inked = true;
    this.onChange();
  }

  /** The drawing as 784 values in [0, 1] (row-major 28x28), or null when nothing is drawn. */
  toPixels(): Float32Array | null {
    if (!this.inked) return null;
    const { width, height } = this.canvas;
    const ink = this.context.getImageData(0, 0, width, height).data;
    let minX = width;
    let minY = height;
    let maxX = -1;
    let maxY = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (ink[(y * width + x) * 4 + 3]! > 0) {
          if (x < minX) minX = x;
          if (x > maxX) maxX = x;
          if (y < minY) minY = y;
          if (y > maxY) maxY = y;
        }
      }
    }
    if (maxX < 0) return null;
    const boxWidth = maxX - minX + 1;
    const boxHeight = maxY - minY + 1;
    const scale = FIT_BOX / Math.max(boxWidth, boxHeight);
    const fittedWidth = Math.max(1, Math.round(boxWidth * scale));
    const fittedHeight = Math.max(1, Math.round(boxHeight * scale));

    // Downsample the bounding box into the 20x20 fit (the browser's smoothing antialiases like MNIST).
    const fitted = document.createElement('canvas');
    fitted.width = fittedWidth;
    fitted.height = fittedHeight;
    const fittedContext = fitted.getContext('2d', { willReadFrequently: true })!;
    fittedContext.imageSmoothingEnabled = true;
    fittedContext.imageSmoothingQuality = 'high';
    fittedContext.drawImage(this.canvas, minX, minY, boxWidth, boxHeight, 0, 0, fittedWidth, fittedHeight);
    const fittedAlpha = fittedContext.getImageData(0, 0, fittedWidth, fittedHeight).data;

    // Centre of mass of the fitted ink, then place it so that it lands on the image centre.
    let mass = 0;
    let sumX = 0;
    let sumY = 0;
    for (let y = 0; y < fittedHeight; y++) {
      for (let x = 0; x < fittedWidth; x++) {
        const value = fittedAlpha[(y * fittedWidth + x) * 4 + 3]! / 255;
        mass += value;
        sumX += value * x;
        sumY += value * y;
      }
    }
    const centreX = mass > 0 ? sumX / mass : fittedWidth / 2;
    const centreY = mass > 0 ? sumY / mass : fittedHeight / 2;
    const offsetX = Math.round(IMAGE_SIZE / 2 - 0.5 - centreX);
    const offsetY = Math.round(IMAGE_SIZE / 2 - 0.5 - centreY);
    const pixels = new Float32Array(PIXEL_COUNT);
    for (let y = 0; y < fittedHeight; y++) {
      for (let x = 0; x < fittedWidth; x++) {
        const targetX = x + offsetX;
        const targetY = y + offsetY;
        if (targetX < 0 || targetY < 0 || targetX >= IMAGE_SIZE || targetY >= IMAGE_SIZE) continue;
        pixels[targetY * IMAGE_SIZE + targetX] = fittedAlpha[(y * fittedWidth + x) * 4 + 3]! / 255;
      }
    }
    return pixels;
  }
}

/** Paints a 28x28 image (values in [0, 1]) onto a small canvas, for thumbnails and previews. */
export function paintDigit(canvas: HTMLCanvasElement, pixels: ArrayLike<number>): void {
  canvas.width = IMAGE_SIZE;
  canvas.height = IMAGE_SIZE;
  const context = canvas.getContext('2d')!;
  const image = context.createImageData(IMAGE_SIZE, IMAGE_SIZE);
  for (let i = 0; i < PIXEL_COUNT; i++) {
    const value = Math.round(255 * Math.min(1, Math.max(0, pixels[i]!)));
    image.data[i * 4] = value;
    image.data[i * 4 + 1] = value;
    image.data[i * 4 + 2] = value;
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}
