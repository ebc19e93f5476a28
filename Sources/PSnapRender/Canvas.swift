// An RGB raster with the few drawing operations the charts need (rectangles, lines, text), and its PNG encoding
// through the system zlib. Pure: no file I/O (callers write the bytes).
import CZlib
import Foundation

/// An RGB colour.
public struct RGB: Sendable, Equatable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    public static let white = RGB(255, 255, 255), black = RGB(0, 0, 0), grey = RGB(120, 120, 120), light = RGB(225, 225, 225)
    /// `#rrggbb`.
    public var hex: String {
        let d = Array("0123456789abcdef")
        return "#" + [r, g, b].map { "\(d[Int($0 >> 4)])\(d[Int($0 & 15)])" }.joined()
    }
}

/// A width × height RGB raster, row 0 at the top.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    public internal(set) var pixels: [UInt8]

    public init(width: Int, height: Int, background: RGB = .white) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, w: width, h: height, background)
    }

    @inline(__always) public mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r; pixels[i + 1] = c.g; pixels[i + 2] = c.b
    }

    public mutating func fill(x: Int, y: Int, w: Int, h: Int, _ c: RGB) {
        for yy in max(0, y)..<min(height, y + h) { for xx in max(0, x)..<min(width, x + w) { set(xx, yy, c) } }
    }

    /// A line from (x0, y0) to (x1, y1), one pixel wide (Bresenham).
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: RGB) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            set(x, y, c)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// Text in the 5 × 7 font with its top-left corner at (x, y); `anchor` 0 left, 0.5 centred, 1 right-aligned.
    public mutating func text(_ s: String, x: Int, y: Int, _ c: RGB = .black, anchor: Double = 0, scale: Int = 1) {
        let s = Self.ascii(s)
        let bytes = Array(s.utf8)
        let w = Self.textWidth(s, scale: scale)
        let x0 = x - Int(Double(w) * anchor)
        for (i, ch) in bytes.enumerated() {
            for col in 0..<Font5x7.width {
                let bits = Font5x7.column(ch, col)
                for row in 0..<Font5x7.height where bits & (1 << row) != 0 {
                    fill(x: x0 + (i * Font5x7.advance + col) * scale, y: y + row * scale, w: scale, h: scale, c)
                }
            }
        }
    }

    /// Text drawn rotated a quarter turn anticlockwise (reading bottom to top), centred on (x, y).
    public mutating func verticalText(_ s: String, x: Int, y: Int, _ c: RGB = .black) {
        let s = Self.ascii(s)
        let bytes = Array(s.utf8)
        let w = Self.textWidth(s)
        let y0 = y + w / 2
        for (i, ch) in bytes.enumerated() {
            for col in 0..<Font5x7.width {
                let bits = Font5x7.column(ch, col)
                for row in 0..<Font5x7.height where bits & (1 << row) != 0 { set(x + row, y0 - (i * Font5x7.advance + col), c) }
            }
        }
    }

    public static func textWidth(_ s: String, scale: Int = 1) -> Int { max(0, ascii(s).utf8.count * Font5x7.advance - 1) * scale }

    /// The font is ASCII: common typographic characters spelled in ASCII, anything else a `?`.
    static func ascii(_ s: String) -> String {
        var o = ""
        for u in s.unicodeScalars {
            switch u {
            case "…": o += "..."
            case "×": o += "x"
            case "−", "–", "—": o += "-"
            case "±": o += "+/-"
            case "²": o += "^2"
            case "’", "‘": o += "'"
            case "“", "”": o += "\""
            default: o.unicodeScalars.append(u.isASCII ? u : "?")
            }
        }
        return o
    }

    /// The canvas as a PNG file (8-bit RGB, no interlace, filter 0 per row, zlib level 6).
    public func png() -> [UInt8] {
        var raw = [UInt8]()
        raw.reserveCapacity(height * (width * 3 + 1))
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: pixels[(y * width * 3)..<((y + 1) * width * 3)])
        }
        var bound = compressBound(uLong(raw.count))
        var z = [UInt8](repeating: 0, count: Int(bound))
        let rc = z.withUnsafeMutableBufferPointer { zb in raw.withUnsafeBufferPointer { rb in compress2(zb.baseAddress!, &bound, rb.baseAddress!, uLong(raw.count), 6) } }
        precondition(rc == Z_OK, "zlib compress2 failed (\(rc))")
        z.removeLast(z.count - Int(bound))
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ data: [UInt8]) {
            let t = Array(type.utf8)
            out += be32(UInt32(data.count)) + t + data
            let crc = (t + data).withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
            out += be32(UInt32(crc))
        }
        chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, 2, 0, 0, 0])
        chunk("IDAT", z)
        chunk("IEND", [])
        return out
    }

    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
}

/// A perceptual colour scale (inferno-like, linear between nine anchors) for densities.
public enum Colormap {
    static let anchors: [(Double, Double, Double)] = [(0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85),
                                                      (227, 89, 51), (249, 140, 10), (249, 201, 50), (252, 255, 164)]

    /// The colour at f ∈ [0, 1].
    public static func color(_ f: Double) -> RGB {
        let x = max(0, min(1, f.isFinite ? f : 0)) * Double(anchors.count - 1)
        let i = min(anchors.count - 2, Int(x)), t = x - Double(i)
        let a = anchors[i], b = anchors[i + 1]
        func mix(_ p: Double, _ q: Double) -> UInt8 { UInt8(max(0, min(255, (p + (q - p) * t).rounded()))) }
        return RGB(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// Distinct colours for line series (a qualitative palette).
    public static let series: [RGB] = [RGB(31, 119, 180), RGB(255, 127, 14), RGB(44, 160, 44), RGB(214, 39, 40), RGB(148, 103, 189),
                                       RGB(140, 86, 75), RGB(227, 119, 194), RGB(127, 127, 127), RGB(188, 189, 34), RGB(23, 190, 207)]
}

/// Axis ticks at "nice" values (1, 2 or 5 × 10ⁿ apart).
public enum Ticks {
    public static func nice(_ lo: Double, _ hi: Double, count: Int = 6) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi > lo else { return lo.isFinite ? [lo] : [] }
        let raw = (hi - lo) / Double(max(1, count))
        let mag = pow10(floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var out: [Double] = []
        var v = (lo / step).rounded(.up) * step
        while v <= hi + step * 1e-9 { out.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return out
    }

    /// A short label: up to 4 significant digits, exponent form for very small or large magnitudes.
    public static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 {
            let e = Int(floor(log10(a)))
            let m = v / pow10(Double(e))
            return trim(m, 3) + "e" + String(e)
        }
        let digits = max(0, 3 - Int(floor(log10(a))))
        return trim(v, digits)
    }

    static func trim(_ v: Double, _ digits: Int) -> String {
        var s = fixed(v, digits)
        if s.contains(".") { while s.hasSuffix("0") { s.removeLast() }; if s.hasSuffix(".") { s.removeLast() } }
        return s
    }

    /// `v` with `digits` digits after the point (no Foundation formatting in this module).
    static func fixed(_ v: Double, _ digits: Int) -> String {
        let scale = pow10(Double(digits))
        let r = (abs(v) * scale).rounded()
        guard r < 9e15 else { return String(v) }
        let n = Int64(r), whole = n / Int64(scale), frac = n % Int64(scale)
        var s = (v < 0 && n != 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let f = String(frac)
            s += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return s
    }

    static func pow10(_ e: Double) -> Double {
        var r = 1.0
        let n = Int(abs(e))
        for _ in 0..<n { r *= 10 }
        return e < 0 ? 1 / r : r
    }
}
