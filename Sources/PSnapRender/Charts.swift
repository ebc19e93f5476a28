// The charts: a density image with axes, ticks, title and colour legend (PNG or SVG), and line charts of a few series
// (SVG or PNG) with an optional second axis. They take plain numbers; the scans that produce them live elsewhere.
import Foundation

/// How counts map to colour.
public enum DensityScale: String, Sendable, CaseIterable {
    /// log(1 + count) / log(1 + max).
    case log
    /// Histogram equalisation: a count's rank among the distinct non-zero counts.
    case eq
}

/// A density image: `counts[i · width + c]`, row 0 the lowest values, drawn with the lowest row at the bottom.
public struct DensityChart: Sendable {
    public var counts: [UInt64]
    public var width: Int, height: Int
    public var x: (lo: Double, hi: Double)
    public var y: (lo: Double, hi: Double)
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var scale: DensityScale = .log
    /// A line under the title (what was left out, the range's origin).
    public var note: String = ""

    public init(counts: [UInt64], width: Int, height: Int, x: (Double, Double), y: (Double, Double), title: String, xLabel: String, yLabel: String) {
        self.counts = counts; self.width = width; self.height = height; self.x = x; self.y = y
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    static let left = 78, right = 96, top = 40, bottom = 46

    /// Colour fraction of each count (0 for an empty cell).
    func fractions() -> [Double] {
        let maxC = counts.max() ?? 0
        guard maxC > 0 else { return counts.map { _ in 0 } }
        switch scale {
        case .log:
            let d = Foundation.log(1 + Double(maxC))
            return counts.map { $0 == 0 ? 0 : 0.08 + 0.92 * Foundation.log(1 + Double($0)) / d }
        case .eq:
            let distinct = Array(Set(counts.filter { $0 > 0 })).sorted()
            var rank: [UInt64: Double] = [:]
            for (i, v) in distinct.enumerated() { rank[v] = distinct.count == 1 ? 1 : Double(i) / Double(distinct.count - 1) }
            return counts.map { $0 == 0 ? 0 : 0.08 + 0.92 * rank[$0]! }
        }
    }

    /// The plot area alone: width × height pixels, one per cell.
    public func raster() -> Canvas {
        var c = Canvas(width: width, height: height, background: Colormap.color(0))
        let f = fractions()
        for i in 0..<height { for col in 0..<width where counts[i * width + col] > 0 { c.set(col, height - 1 - i, Colormap.color(f[i * width + col])) } }
        return c
    }

    /// The legend's colour bar (16 × height), top = the largest count.
    func colorBar() -> Canvas {
        var c = Canvas(width: 16, height: height)
        for y in 0..<height { c.fill(x: 0, y: y, w: 16, h: 1, Colormap.color(0.08 + 0.92 * Double(height - 1 - y) / Double(max(1, height - 1)))) }
        return c
    }

    /// Legend labels: (fraction of the bar from the bottom, text).
    func legendLabels() -> [(Double, String)] {
        let maxC = counts.max() ?? 0
        guard maxC > 0 else { return [(0, "0")] }
        switch scale {
        case .log:
            var out: [(Double, String)] = []
            var v: UInt64 = 1
            let d = Foundation.log(1 + Double(maxC))
            while v <= maxC { out.append((Foundation.log(1 + Double(v)) / d, Ticks.label(Double(v)))); if v > UInt64.max / 10 { break }; v *= 10 }
            return out
        case .eq:
            return [(0, "1"), (1, Ticks.label(Double(maxC)))]
        }
    }

    /// The whole chart as a raster (PNG).
    public func canvas() -> Canvas {
        let W = width + Self.left + Self.right, H = height + Self.top + Self.bottom
        var c = Canvas(width: W, height: H)
        let px = Self.left, py = Self.top
        let r = raster()
        for yy in 0..<height { for xx in 0..<width { let i = (yy * width + xx) * 3; c.set(px + xx, py + yy, RGB(r.pixels[i], r.pixels[i + 1], r.pixels[i + 2])) } }
        c.line(px - 1, py - 1, px + width, py - 1, .grey); c.line(px - 1, py + height, px + width, py + height, .grey)
        c.line(px - 1, py - 1, px - 1, py + height, .grey); c.line(px + width, py - 1, px + width, py + height, .grey)
        for t in Ticks.nice(x.lo, x.hi) {
            let xx = px + Int(((t - x.lo) / (x.hi - x.lo) * Double(width - 1)).rounded())
            c.line(xx, py + height, xx, py + height + 4, .grey)
            c.text(Ticks.label(t), x: xx, y: py + height + 8, anchor: 0.5)
        }
        for t in Ticks.nice(y.lo, y.hi) {
            let yy = py + height - 1 - Int(((t - y.lo) / (y.hi - y.lo) * Double(height - 1)).rounded())
            c.line(px - 5, yy, px - 1, yy, .grey)
            c.text(Ticks.label(t), x: px - 8, y: yy - 3, anchor: 1)
        }
        c.text(title, x: px, y: 8, scale: 1)
        if !note.isEmpty { c.text(note, x: px, y: 22, .grey) }
        c.text(xLabel, x: px + width / 2, y: py + height + 26, anchor: 0.5)
        c.verticalText(yLabel, x: 6, y: py + height / 2)
        let bx = px + width + 16
        let bar = colorBar()
        for yy in 0..<height { for xx in 0..<16 { let i = (yy * 16 + xx) * 3; c.set(bx + xx, py + yy, RGB(bar.pixels[i], bar.pixels[i + 1], bar.pixels[i + 2])) } }
        for (f, s) in legendLabels() {
            let yy = py + height - 1 - Int((f * Double(height - 1)).rounded())
            c.line(bx + 16, yy, bx + 19, yy, .grey)
            c.text(s, x: bx + 22, y: yy - 3)
        }
        c.text("count", x: bx, y: py + height + 8)
        return c
    }

    /// The chart as SVG: the density and the colour bar as inline PNG images, everything else as vector text and lines.
    public func svg() -> String {
        let W = width + Self.left + Self.right, H = height + Self.top + Self.bottom
        let px = Self.left, py = Self.top
        var s = SVG(width: W, height: H)
        s.image(raster().png(), x: px, y: py, w: width, h: height)
        s.rect(x: Double(px) - 0.5, y: Double(py) - 0.5, w: Double(width) + 1, h: Double(height) + 1, stroke: .grey)
        for t in Ticks.nice(x.lo, x.hi) {
            let xx = Double(px) + (t - x.lo) / (x.hi - x.lo) * Double(width - 1) + 0.5
            s.line(xx, Double(py + height), xx, Double(py + height + 5), .grey)
            s.text(Ticks.label(t), x: xx, y: Double(py + height + 17), anchor: "middle")
        }
        for t in Ticks.nice(y.lo, y.hi) {
            let yy = Double(py + height) - (t - y.lo) / (y.hi - y.lo) * Double(height - 1) - 0.5
            s.line(Double(px - 5), yy, Double(px), yy, .grey)
            s.text(Ticks.label(t), x: Double(px - 8), y: yy + 4, anchor: "end")
        }
        s.text(title, x: Double(px), y: 16, size: 14)
        if !note.isEmpty { s.text(note, x: Double(px), y: 31, color: .grey) }
        s.text(xLabel, x: Double(px + width / 2), y: Double(py + height + 36), anchor: "middle")
        s.text(yLabel, x: 14, y: Double(py + height / 2), anchor: "middle", rotate: true)
        let bx = px + width + 16
        s.image(colorBar().png(), x: bx, y: py, w: 16, h: height)
        for (f, label) in legendLabels() {
            let yy = Double(py + height) - f * Double(height - 1) - 0.5
            s.line(Double(bx + 16), yy, Double(bx + 20), yy, .grey)
            s.text(label, x: Double(bx + 23), y: yy + 4)
        }
        s.text("count", x: Double(bx), y: Double(py + height + 17))
        return s.finish()
    }
}

/// One line of a line chart.
public struct LineSeries: Sendable {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    /// Drawn against the right-hand axis.
    public var secondAxis: Bool
    /// A band around the line (e.g. ± one standard deviation), drawn lightly.
    public var band: (lo: [Double], hi: [Double])?
    public init(name: String, x: [Double], y: [Double], secondAxis: Bool = false, band: ([Double], [Double])? = nil) {
        self.name = name; self.x = x; self.y = y; self.secondAxis = secondAxis; self.band = band
    }
}

/// A line chart of a few series against a shared x axis, with an optional second y axis (SVG).
public struct LineChart: Sendable {
    public var series: [LineSeries]
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var y2Label: String = ""
    public var width = 720, height = 360

    public init(series: [LineSeries], title: String, xLabel: String, yLabel: String) {
        self.series = series; self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    static func range(_ v: [Double]) -> (Double, Double) {
        let f = v.filter(\.isFinite)
        guard let lo = f.min(), let hi = f.max() else { return (0, 1) }
        if lo == hi { return (lo - 0.5, hi + 0.5) }
        let m = (hi - lo) * 0.04
        return (lo - m, hi + m)
    }

    public func svg() -> String {
        // The legend: two entries per line above the plot.
        let legendRows = (series.count + 1) / 2
        let left = 78.0, right = series.contains(where: \.secondAxis) ? 78.0 : 24.0, top = 28.0 + 14.0 * Double(max(1, legendRows)), bottom = 46.0
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        var s = SVG(width: width, height: height)
        let xr = Self.range(series.flatMap(\.x))
        let y1 = Self.range(series.filter { !$0.secondAxis }.flatMap { $0.y + ($0.band.map { $0.lo + $0.hi } ?? []) })
        let y2 = Self.range(series.filter(\.secondAxis).flatMap(\.y))
        func X(_ v: Double) -> Double { left + (v - xr.0) / (xr.1 - xr.0) * pw }
        func Y(_ v: Double, _ second: Bool) -> Double { let r = second ? y2 : y1; return top + ph - (v - r.0) / (r.1 - r.0) * ph }
        s.rect(x: left, y: top, w: pw, h: ph, stroke: .grey)
        for t in Ticks.nice(xr.0, xr.1) { s.line(X(t), top + ph, X(t), top + ph + 5, .grey); s.text(Ticks.label(t), x: X(t), y: top + ph + 17, anchor: "middle") }
        for t in Ticks.nice(y1.0, y1.1) { s.line(left - 5, Y(t, false), left, Y(t, false), .grey); s.text(Ticks.label(t), x: left - 8, y: Y(t, false) + 4, anchor: "end") }
        if series.contains(where: \.secondAxis) {
            for t in Ticks.nice(y2.0, y2.1) { s.line(left + pw, Y(t, true), left + pw + 5, Y(t, true), .grey); s.text(Ticks.label(t), x: left + pw + 8, y: Y(t, true) + 4) }
            s.text(y2Label, x: Double(width) - 12, y: top + ph / 2, anchor: "middle", rotate: true)
        }
        for (i, l) in series.enumerated() {
            let color = Colormap.series[i % Colormap.series.count]
            if let band = l.band {
                let up = zip(l.x, band.hi).filter { $0.0.isFinite && $0.1.isFinite }.map { (X($0.0), Y($0.1, l.secondAxis)) }
                let down = zip(l.x, band.lo).filter { $0.0.isFinite && $0.1.isFinite }.map { (X($0.0), Y($0.1, l.secondAxis)) }.reversed()
                s.polygon(up + down, fill: color, opacity: 0.18)
            }
            // Non-finite values break the line (never drawn to infinity).
            var run: [(Double, Double)] = []
            for (a, b) in zip(l.x, l.y) {
                if a.isFinite && b.isFinite { run.append((X(a), Y(b, l.secondAxis))) } else { s.polyline(run, color, dashed: l.secondAxis); run = [] }
            }
            s.polyline(run, color, dashed: l.secondAxis)
            let lx = left + Double(i % 2) * pw / 2, ly = 30.0 + 14.0 * Double(i / 2)
            s.line(lx, ly - 4, lx + 14, ly - 4, color)
            s.text(String(l.name.prefix(60)), x: lx + 18, y: ly, color: color)
        }
        s.text(title, x: left, y: 16, size: 14)
        s.text(xLabel, x: left + pw / 2, y: top + ph + 36, anchor: "middle")
        s.text(yLabel, x: 14, y: top + ph / 2, anchor: "middle", rotate: true)
        return s.finish()
    }
}

/// A small SVG writer.
struct SVG {
    var body = ""
    let width: Int, height: Int
    init(width: Int, height: Int) { self.width = width; self.height = height }

    static func escape(_ s: String) -> String {
        var o = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            default: if ch.value < 0x20 { o += " " } else { o.unicodeScalars.append(ch) }
            }
        }
        return o
    }

    static func n(_ v: Double) -> String { v.isFinite ? String(format: "%.2f", v) : "0" }

    mutating func image(_ png: [UInt8], x: Int, y: Int, w: Int, h: Int) {
        body += "<image x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(h)\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,\(Data(png).base64EncodedString())\"/>\n"
    }
    mutating func rect(x: Double, y: Double, w: Double, h: Double, stroke: RGB) {
        body += "<rect x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" width=\"\(Self.n(w))\" height=\"\(Self.n(h))\" fill=\"none\" stroke=\"\(stroke.hex)\"/>\n"
    }
    mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: RGB) {
        body += "<line x1=\"\(Self.n(x0))\" y1=\"\(Self.n(y0))\" x2=\"\(Self.n(x1))\" y2=\"\(Self.n(y1))\" stroke=\"\(c.hex)\"/>\n"
    }
    mutating func polyline(_ pts: [(Double, Double)], _ c: RGB, dashed: Bool = false) {
        guard !pts.isEmpty else { return }
        let p = pts.map { "\(Self.n($0.0)),\(Self.n($0.1))" }.joined(separator: " ")
        body += "<polyline points=\"\(p)\" fill=\"none\" stroke=\"\(c.hex)\" stroke-width=\"1.5\"\(dashed ? " stroke-dasharray=\"5,3\"" : "")/>\n"
    }
    mutating func polygon(_ pts: [(Double, Double)], fill: RGB, opacity: Double) {
        guard pts.count > 2 else { return }
        let p = pts.map { "\(Self.n($0.0)),\(Self.n($0.1))" }.joined(separator: " ")
        body += "<polygon points=\"\(p)\" fill=\"\(fill.hex)\" fill-opacity=\"\(opacity)\" stroke=\"none\"/>\n"
    }
    mutating func text(_ t: String, x: Double, y: Double, anchor: String = "start", size: Int = 11, color: RGB = .black, rotate: Bool = false) {
        let r = rotate ? " transform=\"rotate(-90 \(Self.n(x)) \(Self.n(y)))\"" : ""
        body += "<text x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" font-family=\"sans-serif\" font-size=\"\(size)\" fill=\"\(color.hex)\" text-anchor=\"\(anchor)\"\(r)>\(Self.escape(t))</text>\n"
    }
    func finish() -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body + "</svg>\n"
    }
}
