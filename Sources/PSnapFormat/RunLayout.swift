// Derived geometry of a run (spec §1, §4): parameter offsets, blocks per tensor, block sizes.

/// Geometry derived from the tensors and the block size: where each tensor's parameters and blocks start.
public struct RunLayout: Sendable {
    public let tensors: [TensorInfo]
    public let blockSize: Int
    /// Parameters per tensor.
    public let parameterCounts: [Int]
    /// Global parameter index of each tensor's first parameter (§1), plus the total at the end.
    public let parameterOffsets: [Int]
    /// Blocks per tensor.
    public let blockCounts: [Int]
    /// Global block number of each tensor's first block, plus the total at the end.
    public let blockOffsets: [Int]

    /// Builds the layout of validated tensors.
    public init(tensors: [TensorInfo], blockSize: Int) {
        self.tensors = tensors
        self.blockSize = blockSize
        var pc: [Int] = [], po: [Int] = [0], bc: [Int] = [], bo: [Int] = [0]
        for t in tensors {
            let n = t.parameterCount ?? 0
            pc.append(n); po.append(po.last! + n)
            let b = n == 0 ? 0 : (n - 1) / blockSize + 1
            bc.append(b); bo.append(bo.last! + b)
        }
        parameterCounts = pc; parameterOffsets = po; blockCounts = bc; blockOffsets = bo
    }

    public var parameterCount: Int { parameterOffsets.last! }
    public var totalBlocks: Int { blockOffsets.last! }

    /// Parameters in block `block` of tensor `tensor`.
    public func blockParams(tensor: Int, block: Int) -> Int {
        min(blockSize, parameterCounts[tensor] - block * blockSize)
    }

    /// Tensor holding global parameter `g` (binary search), and the flat index inside it.
    public func locate(global g: Int) -> (tensor: Int, index: Int)? {
        guard g >= 0, g < parameterCount else { return nil }
        var lo = 0, hi = tensors.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if parameterOffsets[mid] <= g { lo = mid } else { hi = mid - 1 }
        }
        // Skip empty tensors sharing the same offset.
        while parameterCounts[lo] == 0 || g >= parameterOffsets[lo + 1] { lo += 1 }
        return (lo, g - parameterOffsets[lo])
    }

    /// Row-major flat index of a multi-index, or nil when out of range.
    public func flatIndex(tensor: Int, multiIndex: [Int]) -> Int? {
        let shape = tensors[tensor].shape
        guard multiIndex.count == shape.count else { return nil }
        var flat = 0
        for (i, d) in zip(multiIndex, shape) {
            guard i >= 0, i < d else { return nil }
            flat = flat * d + i
        }
        return flat
    }
}
