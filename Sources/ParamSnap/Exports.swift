// The format's types (TensorInfo, FileHeader, Footer, FormatError, …) are part of this module's API.
@_exported import PSnapFormat
