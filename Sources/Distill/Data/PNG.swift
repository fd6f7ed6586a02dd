/// Minimal PNG encoding (8-bit greyscale or RGB, no interlace) for image grids.
public enum PNG {
    /// Encodes `pixels` (row-major, `channels` per pixel, 1 or 3) as a PNG file.
    public static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8]) -> [UInt8] {
        precondition(channels == 1 || channels == 3, "PNG supports 1 or 3 channels here")
        precondition(pixels.count == width * height * channels, "pixel count does not match \(width)×\(height)×\(channels)")
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return bigEndian(UInt32(data.count)) + body + bigEndian(FileBytes.crc32(body))
        }
        func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        var raw: [UInt8] = []
        raw.reserveCapacity((width * channels + 1) * height)
        for row in 0..<height {
            raw.append(0)  // filter: none
            raw += pixels[(row * width * channels)..<((row + 1) * width * channels)]
        }
        let header = bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, channels == 1 ? 0 : 2, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", FileBytes.deflate(raw))
            + chunk("IEND", [])
    }

    /// How a grid maps values to pixels.
    public enum Contrast: Sendable {
        /// The dataset's de-normalisation, clipped to 0...1 (what a model sees).
        case dataset
        /// Each image stretched from its own minimum to its maximum (synthetic images often sit in a narrow or
        /// out-of-range band that reads as noise otherwise).
        case perImage
    }

    /// A grid with one row per class and one column per image of that class, de-normalised to pixels, each image
    /// scaled up by `zoom` and separated by a 1-pixel border.
    public static func grid(_ set: LabeledImages, normalization: Normalization, zoom: Int = 1, contrast: Contrast = .dataset) -> [UInt8] {
        let (c, h, w) = (set.imageShape[0], set.imageShape[1], set.imageShape[2])
        let byClass = set.indicesByClass().filter { !$0.isEmpty }
        let columns = max(byClass.map(\.count).max() ?? 1, 1)
        let cellH = h * zoom + 1, cellW = w * zoom + 1
        let (width, height) = (columns * cellW + 1, max(byClass.count, 1) * cellH + 1)
        let outChannels = c == 3 ? 3 : 1
        var pixels = [UInt8](repeating: 255, count: width * height * outChannels)
        var images = normalization.denormalize(set.images)
        if contrast == .perImage {
            let size = c * h * w
            for index in 0..<set.count {
                let range = index * size..<(index + 1) * size
                let low = images.storage[range].min() ?? 0, high = images.storage[range].max() ?? 1
                let scale: Float = high > low ? 1 / (high - low) : 0
                for i in range { images.storage[i] = (images.storage[i] - low) * scale }
            }
        }
        for (row, members) in byClass.enumerated() {
            for (column, index) in members.enumerated() {
                for y in 0..<(h * zoom) {
                    for x in 0..<(w * zoom) {
                        let (py, px) = (row * cellH + 1 + y, column * cellW + 1 + x)
                        for ch in 0..<outChannels {
                            let v = images.storage[((index * c + ch) * h + y / zoom) * w + x / zoom]
                            pixels[(py * width + px) * outChannels + ch] = UInt8(max(0, min(255, (v * 255).rounded())))
                        }
                    }
                }
            }
        }
        return encode(width: width, height: height, channels: outChannels, pixels: pixels)
    }
}
