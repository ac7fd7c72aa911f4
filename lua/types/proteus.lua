---@meta
-- lua/types/proteus.lua — LuaCATS definitions of the proteus Lua API, for lua-language-server
-- (completion, hover, type checks in recipes). Never loaded at run time.
--
-- Editor setup (.luarc.json at the repository root):
--   { "runtime.version": "Lua 5.4", "workspace.library": ["lua/lib", "lua/types"] }
--
-- This file is also the source of the REPL's help() texts (lua/lib/proteus/docs.lua reads it) and
-- of docs/api.md (scripts/gen_api_docs.lua). Layout rules the reader relies on:
--   * a module starts with `---@class NAME` (its summary in the `---` lines above) and `local X = {}`;
--   * a function is `function X.name(args) end` or `function X:name(args) end`, its description
--     in the `---` lines above, with ---@param / ---@return;
--   * a constant is `X.NAME = value` with its description above.
-- tests/lua/test_docs.lua checks that every public function of the covered modules is documented
-- here, that every entry here exists, and that docs/api.md matches this file.

-- =================================================================================================
-- proteus
-- =================================================================================================

---@alias proteus.Shape integer[]                 a list of dim sizes, e.g. {2, 3}
---@alias proteus.DType "f32"|"f64"|"bf16"|"f16"|"i64"|"i32"|"u16"|"i8"|"u8"|"bool"
---@alias proteus.Device "cpu"|"cuda"|string      "cuda:1" names an ordinal
---@alias proteus.TensorOpts proteus.DType|{dtype?: proteus.DType, device?: proteus.Device, requires_grad?: boolean}
---@alias proteus.Scalar number|proteus.Tensor

--- Tensors, dtypes, devices, random numbers, autograd switches. Dims and positions are 1-based
--- (dim 1 first, -1 last, t[1] the first row); values in tensors keep their meaning (token ids are
--- 0-based ids).
---@class proteus
---@field Tensor proteus.Tensor   the tensor method table (t:method(...))
---@field cuda proteus.cuda       the CUDA backend (proteus.cuda)
---@field dtypes proteus.DType[]  every dtype name
---@field version string          the proteus version
local pt = {}

--- A tensor from a number or a nested table of numbers.
---@param data number|table nested lists, e.g. {{1, 2}, {3, 4}}
---@param opts? proteus.TensorOpts dtype string or {dtype=, device=, requires_grad=}; default f32
---@return proteus.Tensor
function pt.tensor(data, opts) end

--- A tensor of zeros.
---@param shape proteus.Shape {d1, d2, ...} (or the sizes as integer arguments)
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.zeros(shape, opts) end

--- A tensor of ones.
---@param shape proteus.Shape
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.ones(shape, opts) end

--- A tensor filled with value.
---@param shape proteus.Shape
---@param value number
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.full(shape, value, opts) end

--- An uninitialised tensor.
---@param shape proteus.Shape
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.empty(shape, opts) end

--- Values start, start+step, ... below stop: arange(stop) or arange(start, stop[, step][, opts]).
---@param start number
---@param stop? number
---@param step? number
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.arange(start, stop, step, opts) end

--- Concatenates a list of tensors along an existing dim (default 1).
---@param tensors proteus.Tensor[]
---@param dim? integer
---@return proteus.Tensor
function pt.cat(tensors, dim) end

--- Stacks a list of same-shaped tensors along a new dim (default 1).
---@param tensors proteus.Tensor[]
---@param dim? integer
---@return proteus.Tensor
function pt.stack(tensors, dim) end

--- Elementwise cond ? a : b; a and b may be numbers.
---@param cond proteus.Tensor bool tensor
---@param a proteus.Scalar
---@param b proteus.Scalar
---@return proteus.Tensor
function pt.where(cond, a, b) end

--- Runs fn(...) with gradient recording off and returns what fn returns.
---@param fn function
---@return any ...
function pt.no_grad(fn, ...) end

--- Runs fn(...) with gradient recording on (the opposite of pt.no_grad).
---@param fn function
---@return any ...
function pt.enable_grad(fn, ...) end

--- Switches gradient recording; returns the previous setting.
---@param on boolean
---@return boolean previous
function pt.set_grad_enabled(on) end

--- Whether gradient recording is on.
---@return boolean
function pt.grad_enabled() end

--- Whether x is a tensor.
---@param x any
---@return boolean
function pt.is_tensor(x) end

--- Counts of live tensors and storages and the bytes they hold: {live_tensors, live_storages,
--- host_bytes, device_bytes}.
---@return table
function pt.stats() end

--- Splits t along dim into pieces of size (the last may be smaller); views share storage.
---@param t proteus.Tensor
---@param size integer
---@param dim? integer default 1
---@return proteus.Tensor[]
function pt.split(t, size, dim) end

--- Splits t into `chunks` nearly equal pieces along dim (torch.chunk semantics).
---@param t proteus.Tensor
---@param chunks integer
---@param dim? integer default 1
---@return proteus.Tensor[]
function pt.chunk(t, chunks, dim) end

--- Rows of w selected by 0-based ids: w [V, C], idx i64 [...] -> [..., C]; differentiable in w.
---@param w proteus.Tensor
---@param idx proteus.Tensor
---@return proteus.Tensor
function pt.embedding(w, idx) end

--- Matrix product with torch.matmul semantics (1-D, 2-D, batched with broadcasting).
---@param a proteus.Tensor
---@param b proteus.Tensor
---@return proteus.Tensor
function pt.matmul(a, b) end

--- Reduced QR decomposition of a matrix (or a batch): a = q r.
---@param a proteus.Tensor
---@return proteus.Tensor q
---@return proteus.Tensor r
function pt.qr(a) end

--- Cholesky factor: lower L with A = L Lᵀ, or upper U with A = Uᵀ U when upper is true.
---@param a proteus.Tensor
---@param upper? boolean
---@return proteus.Tensor
function pt.cholesky(a, upper) end

--- Matrix inverse (batched), differentiable.
---@param a proteus.Tensor
---@return proteus.Tensor
function pt.inverse(a) end

--- Sets the seed of the counter-based (Philox) generator; CPU and CUDA draw the same numbers.
---@param seed integer
function pt.manual_seed(seed) end

--- The generator's state {seed, offset}, for checkpoints.
---@return {seed: integer, offset: integer}
function pt.get_rng_state() end

--- Restores a state from pt.get_rng_state.
---@param state {seed: integer, offset: integer}
function pt.set_rng_state(state) end

--- Uniform numbers in [0, 1).
---@param shape proteus.Shape
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.rand(shape, opts) end

--- Standard normal numbers.
---@param shape proteus.Shape
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.randn(shape, opts) end

--- Integers in [lo, hi) (i64 by default).
---@param lo integer
---@param hi integer
---@param shape proteus.Shape
---@param opts? proteus.TensorOpts
---@return proteus.Tensor
function pt.randint(lo, hi, shape, opts) end

--- A random permutation of 0 .. n-1 (i64). `opts.device = "cuda"` makes it on the device with the
--- same permutation as the CPU for the same seed.
---@param n integer
---@param opts? {device?: string}
---@return proteus.Tensor
function pt.randperm(n, opts) end

-- =================================================================================================
-- proteus.Tensor
-- =================================================================================================

--- A tensor: a view (dtype, device, shape, strides, offset) over refcounted storage. Operators + - * /
--- ^ and unary - work with tensors and numbers; t[i] selects along dim 1; #t is the size of dim 1;
--- t.grad is the gradient after backward; t.requires_grad is read/write on leaves;
--- `local t <close> = ...` frees memory at scope end.
---@class proteus.Tensor
---@field grad proteus.Tensor|nil         the accumulated gradient (after backward)
---@field requires_grad boolean           whether operations on this tensor are recorded
---@operator add(proteus.Scalar): proteus.Tensor
---@operator sub(proteus.Scalar): proteus.Tensor
---@operator mul(proteus.Scalar): proteus.Tensor
---@operator div(proteus.Scalar): proteus.Tensor
---@operator pow(proteus.Scalar): proteus.Tensor
---@operator unm: proteus.Tensor
---@operator len: integer
local Tensor = {}

--- The shape as a list of sizes.
---@return proteus.Shape
function Tensor:shape() end

--- The size of one dim (1-based, negative from the end).
---@param dim integer
---@return integer
function Tensor:size(dim) end

--- The number of dims.
---@return integer
function Tensor:dim() end

--- The number of elements.
---@return integer
function Tensor:numel() end

--- The dtype name ("f32", "i64", ...).
---@return proteus.DType
function Tensor:dtype() end

--- The device ("cpu", "cuda:0", ...).
---@return string
function Tensor:device() end

--- The strides in elements, one per dim.
---@return integer[]
function Tensor:stride() end

--- Whether the elements are laid out row-major without gaps.
---@return boolean
function Tensor:is_contiguous() end

--- Converts: t:to("f64"), t:to("cuda"), t:to("cuda", "bf16"), t:to{dtype=, device=}; differentiable for float casts.
---@param a proteus.DType|proteus.Device|{dtype?: proteus.DType, device?: proteus.Device}
---@param b? proteus.DType
---@return proteus.Tensor
function Tensor:to(a, b) end

--- The value of a one-element tensor (integers exact for integer dtypes).
---@return number
function Tensor:item() end

--- The values as nested Lua tables.
---@return table
function Tensor:totable() end

--- The element at 1-based positions i, j, ... (CPU).
---@param ... integer
---@return number
function Tensor:get(...) end

--- Sets the element at 1-based positions: t:set(value, i, j, ...) (CPU).
---@param value number
---@param ... integer
function Tensor:set(value, ...) end

--- Element i (1-based) in row-major order of the view (CPU).
---@param i integer
---@return number
function Tensor:flat_get(i) end

--- Sets element i (1-based) in row-major order of the view (CPU).
---@param i integer
---@param v number
function Tensor:flat_set(i, v) end

--- Elementwise sum (broadcasting); same as t + other.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:add(other) end

--- Elementwise difference; same as t - other.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:sub(other) end

--- Elementwise product; same as t * other.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:mul(other) end

--- Elementwise quotient; same as t / other.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:div(other) end

--- Elementwise power; same as t ^ other.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:pow(other) end

--- Elementwise maximum of two tensors.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:maximum(other) end

--- Elementwise minimum of two tensors.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:minimum(other) end

--- Elementwise ==, a bool tensor.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:eq(other) end

--- Elementwise ~=, a bool tensor.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:ne(other) end

--- Elementwise <, a bool tensor.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:lt(other) end

--- Elementwise <=, a bool tensor.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:le(other) end

--- Elementwise >, a bool tensor.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:gt(other) end

--- Elementwise >=, a bool tensor.
---@param other proteus.Scalar
---@return proteus.Tensor
function Tensor:ge(other) end

--- -t.
---@return proteus.Tensor
function Tensor:neg() end

--- eᵗ.
---@return proteus.Tensor
function Tensor:exp() end

--- Natural logarithm.
---@return proteus.Tensor
function Tensor:log() end

--- Hyperbolic tangent.
---@return proteus.Tensor
function Tensor:tanh() end

--- Logistic sigmoid 1/(1 + e⁻ᵗ).
---@return proteus.Tensor
function Tensor:sigmoid() end

--- max(t, 0).
---@return proteus.Tensor
function Tensor:relu() end

--- Square root.
---@return proteus.Tensor
function Tensor:sqrt() end

--- 1/√t.
---@return proteus.Tensor
function Tensor:rsqrt() end

--- |t|.
---@return proteus.Tensor
function Tensor:abs() end

--- Sign: -1, 0 or 1.
---@return proteus.Tensor
function Tensor:sign() end

--- Round half to even.
---@return proteus.Tensor
function Tensor:round() end

--- Sine.
---@return proteus.Tensor
function Tensor:sin() end

--- Cosine.
---@return proteus.Tensor
function Tensor:cos() end

--- t².
---@return proteus.Tensor
function Tensor:square() end

--- 1/t.
---@return proteus.Tensor
function Tensor:reciprocal() end

--- t where t > 0, else slope·t.
---@param slope? number
---@return proteus.Tensor
function Tensor:leaky_relu(slope) end

--- Clamps into [min, max] (either may be nil).
---@param min? number
---@param max? number
---@return proteus.Tensor
function Tensor:clamp(min, max) end

--- A view (or copy when needed) with a new shape; one size may be -1.
---@param shape proteus.Shape
---@return proteus.Tensor
function Tensor:reshape(shape) end

--- Same as reshape.
---@param shape proteus.Shape
---@return proteus.Tensor
function Tensor:view(shape) end

--- Swaps two dims (a view).
---@param d1 integer
---@param d2 integer
---@return proteus.Tensor
function Tensor:transpose(d1, d2) end

--- Reorders the dims (a view): t:permute(2, 1, 3) or t:permute{2, 1, 3}.
---@param ... integer|integer[]
---@return proteus.Tensor
function Tensor:permute(...) end

--- len elements of dim from position start (1-based), a view.
---@param dim integer
---@param start integer
---@param len integer
---@return proteus.Tensor
function Tensor:narrow(dim, start, len) end

--- Position i (1-based) of dim, removing that dim (a view); t[i] = t:select(1, i).
---@param dim integer
---@param i integer
---@return proteus.Tensor
function Tensor:select(dim, i) end

--- Broadcasts size-1 dims to shape (a view, no copy).
---@param shape proteus.Shape
---@return proteus.Tensor
function Tensor:expand(shape) end

--- A contiguous tensor with the same values (itself when already contiguous).
---@return proteus.Tensor
function Tensor:contiguous() end

--- Inserts a size-1 dim at dim.
---@param dim integer
---@return proteus.Tensor
function Tensor:unsqueeze(dim) end

--- Removes size-1 dims (all, or only dim).
---@param dim? integer
---@return proteus.Tensor
function Tensor:squeeze(dim) end

--- Flattens dims [start_dim, end_dim] (1-based, inclusive; defaults 1 and -1) into one.
---@param start_dim? integer
---@param end_dim? integer
---@return proteus.Tensor
function Tensor:flatten(start_dim, end_dim) end

--- Splits along dim into pieces of size (see pt.split).
---@param size integer
---@param dim? integer
---@return proteus.Tensor[]
function Tensor:split(size, dim) end

--- Splits into `chunks` pieces along dim (see pt.chunk).
---@param chunks integer
---@param dim? integer
---@return proteus.Tensor[]
function Tensor:chunk(chunks, dim) end

--- Backpropagates from this tensor; grad defaults to 1 for a one-element tensor.
---@param grad? proteus.Tensor
function Tensor:backward(grad) end

--- The same values, cut from the autograd graph.
---@return proteus.Tensor
function Tensor:detach() end

--- Drops this tensor's .grad.
function Tensor:zero_grad() end

--- A copy with its own storage.
---@return proteus.Tensor
function Tensor:clone() end

--- Copies src's values into t (in place; broadcasting, casting).
---@param src proteus.Tensor
---@return proteus.Tensor self
function Tensor:copy_(src) end

--- Sets every element to v (in place).
---@param v number
---@return proteus.Tensor self
function Tensor:fill_(v) end

--- t += alpha·other (in place; refused on a leaf that requires grad while grad mode is on).
---@param other proteus.Scalar
---@param alpha? number default 1
---@return proteus.Tensor self
function Tensor:add_(other, alpha) end

--- t *= s (in place).
---@param s number
---@return proteus.Tensor self
function Tensor:mul_(s) end

--- Whether two tensors view the same memory.
---@param other proteus.Tensor
---@return boolean
function Tensor:shares_storage(other) end

--- Frees the tensor's memory now (also done by `<close>` and the collector); later use is an error.
function Tensor:release() end

--- Sum over dims (nil: all; a dim; or a list of dims).
---@param dims? integer|integer[]
---@param keepdim? boolean
---@return proteus.Tensor
function Tensor:sum(dims, keepdim) end

--- Mean over dims (nil: all).
---@param dims? integer|integer[]
---@param keepdim? boolean
---@return proteus.Tensor
function Tensor:mean(dims, keepdim) end

--- Variance over dims with Bessel's correction (default 1).
---@param dims? integer|integer[]
---@param correction? integer
---@param keepdim? boolean
---@return proteus.Tensor
function Tensor:var(dims, correction, keepdim) end

--- Standard deviation over dims (correction default 1).
---@param dims? integer|integer[]
---@param correction? integer
---@param keepdim? boolean
---@return proteus.Tensor
function Tensor:std(dims, correction, keepdim) end

--- p-norm over dims (p default 2; nil dims: all).
---@param p? number
---@param dims? integer|integer[]
---@param keepdim? boolean
---@return proteus.Tensor
function Tensor:norm(p, dims, keepdim) end

--- Max along dim: values and 0-based i64 indices; no dim: the global max (0-d).
---@param dim? integer
---@param keepdim? boolean
---@return proteus.Tensor values
---@return proteus.Tensor indices
function Tensor:max(dim, keepdim) end

--- Min along dim: values and 0-based i64 indices; no dim: the global min.
---@param dim? integer
---@param keepdim? boolean
---@return proteus.Tensor values
---@return proteus.Tensor indices
function Tensor:min(dim, keepdim) end

--- 0-based i64 positions of the max along dim.
---@param dim? integer
---@param keepdim? boolean
---@return proteus.Tensor
function Tensor:argmax(dim, keepdim) end

--- Softmax along dim.
---@param dim integer
---@return proteus.Tensor
function Tensor:softmax(dim) end

--- Log-softmax along dim.
---@param dim integer
---@return proteus.Tensor
function Tensor:log_softmax(dim) end

--- Entries of dim at the 0-based positions of idx (i64).
---@param dim integer
---@param idx proteus.Tensor
---@return proteus.Tensor
function Tensor:index_select(dim, idx) end

--- torch.gather: out[i][j] = t[i][idx[i][j]] along dim (0-based idx values).
---@param dim integer
---@param idx proteus.Tensor
---@return proteus.Tensor
function Tensor:gather(dim, idx) end

--- A copy of t with src added at the 0-based positions idx along dim.
---@param dim integer
---@param idx proteus.Tensor
---@param src proteus.Tensor
---@return proteus.Tensor
function Tensor:scatter_add(dim, idx, src) end

--- Matrix product (torch.matmul semantics).
---@param other proteus.Tensor
---@return proteus.Tensor
function Tensor:matmul(other) end

--- Reduced QR decomposition.
---@return proteus.Tensor q
---@return proteus.Tensor r
function Tensor:qr() end

--- Cholesky factor (lower, or upper when upper is true).
---@param upper? boolean
---@return proteus.Tensor
function Tensor:cholesky(upper) end

--- Matrix inverse (batched).
---@return proteus.Tensor
function Tensor:inverse() end

--- Sorted values and their 0-based indices along dim (default -1).
---@param dim? integer
---@param descending? boolean
---@return proteus.Tensor values
---@return proteus.Tensor indices
function Tensor:sort(dim, descending) end

--- The k largest (or smallest) values along dim and their 0-based indices.
---@param k integer
---@param dim? integer default -1
---@param largest? boolean default true
---@return proteus.Tensor values
---@return proteus.Tensor indices
function Tensor:topk(k, dim, largest) end

--- The k-th smallest value along dim and its 0-based index.
---@param k integer
---@param dim? integer
---@param keepdim? boolean
---@return proteus.Tensor values
---@return proteus.Tensor indices
function Tensor:kthvalue(k, dim, keepdim) end

--- The q-quantile (linear interpolation) over dim, or over all elements.
---@param q number in [0, 1]
---@param dim? integer
---@param keepdim? boolean
---@return proteus.Tensor
function Tensor:quantile(q, dim, keepdim) end

--- Fills with uniform numbers in [lo, hi) from the generator (in place).
---@param lo? number
---@param hi? number
---@return proteus.Tensor self
function Tensor:uniform_(lo, hi) end

--- Fills with normal numbers (in place).
---@param mean? number
---@param std? number
---@return proteus.Tensor self
function Tensor:normal_(mean, std) end

-- =================================================================================================
-- proteus.functional
-- =================================================================================================

--- The fused differentiable ops of the GPT family, one autograd node each (spec parameter-golf §2–§5).
--- Tensors are f32 or f64; token ids are 0-based.
---@class proteus.functional
local F = {}

--- FLT_EPSILON, the default eps of rms_norm.
F.RMS_EPS = 1.1920929e-07

--- x / sqrt(mean(x², last dim) + eps) · scale (scale: the ln-scale λ, a number).
---@param x proteus.Tensor
---@param eps? number default F.RMS_EPS
---@param scale? number
---@return proteus.Tensor
function F.rms_norm(x, eps, scale) end

--- Rotary position embedding of x [B,T,H,D], half-split pairs (j, j + r/2).
---@param x proteus.Tensor
---@param opts? {dims?: integer, base?: number, train_len?: integer|false, offset?: integer} dims: rotary dims r (default D); base 10000; train_len 1024 (NTK scaling when T > train_len; 0/false off); offset: first position
---@return proteus.Tensor
function F.rotary(x, opts) end

--- The rotary base actually used at length T (the NTK rule base·(T/train_len)^(r/(r−2))).
---@param base number
---@param r integer rotary dims
---@param T integer
---@param train_len? integer
---@return number
function F.rotary_base(base, r, T, train_len) end

--- Causal softmax attention with GQA: q [B,T,H,D], k, v [B,T,Hkv,D]; query head h uses kv head ⌊h/(H/Hkv)⌋.
---@param q proteus.Tensor
---@param k proteus.Tensor
---@param v proteus.Tensor
---@param opts? {scale?: number} default 1/√D
---@return proteus.Tensor
function F.attention(q, k, v, opts) end

--- Exclusive self attention (§4.2): y − (y·v̂)v̂ with v̂ = v/max(‖v‖, 1e-12) of the head's kv group.
---@param y proteus.Tensor
---@param v proteus.Tensor
---@return proteus.Tensor
function F.xsa(y, v) end

--- relu(x)².
---@param x proteus.Tensor
---@return proteus.Tensor
function F.relu2(x) end

--- leaky_relu(x, slope)² (slope default 0.5).
---@param x proteus.Tensor
---@param slope? number
---@return proteus.Tensor
function F.leaky_relu2(x, slope) end

--- relu(x)²·scale + bias.
---@param x proteus.Tensor
---@param scale proteus.Scalar
---@param bias proteus.Scalar
---@return proteus.Tensor
function F.star_relu(x, scale, bias) end

--- Cross-entropy of softcapped logits z = cap·tanh(logits/cap) against 0-based targets; mean, or
--- the per-position NLL with reduction = "none".
---@param logits proteus.Tensor [N, V]
---@param targets proteus.Tensor i64 [N]
---@param opts? {softcap?: number|false, reduction?: "mean"|"none"} softcap default 30
---@return proteus.Tensor
function F.softcap_cross_entropy(logits, targets, opts) end

--- The LM head fused with the softcapped cross-entropy: softcap_cross_entropy(x · wᵀ, targets) computed in
--- row chunks, so the [N, V] logits never exist at once (the backward recomputes each chunk's logits).
--- Same value as the unfused path; the gradient reaches x and w (the tied embedding).
---@param x proteus.Tensor [..., C] (N rows)
---@param w proteus.Tensor [V, C]
---@param targets proteus.Tensor integer ids [...] (the shape of x without its last dim)
---@param opts? {softcap?: number|false, chunk?: integer, reduction?: "mean"|"none"} softcap default 30; chunk: rows per chunk (default: as many as keep a chunk's logits ≤ 64 MiB)
---@return proteus.Tensor
function F.linear_softcap_cross_entropy(x, w, targets, opts) end

--- The MLP's up projection fused with relu²: relu(x · wᵀ)² as one autograd node that saves x, w and
--- h = x · wᵀ (not the output). On the CPU (f32, f64) bit for bit F.relu2(x:matmul(w:transpose(1, 2)))
--- and its gradients; on CUDA also bf16, where PROTEUS_LINEAR_ACT=auto|cublas|fused picks cuBLAS +
--- an activation kernel (the default) or the fused GEMM kernel (src/kernels/pt_linear_act.h).
---@param x proteus.Tensor [..., in]
---@param w proteus.Tensor [out, in]
---@return proteus.Tensor [..., out]
function F.linear_relu2(x, w) end

--- leaky_relu(x · wᵀ, slope)² as one autograd node (slope default 0.5, #1539's MLP); otherwise as
--- F.linear_relu2.
---@param x proteus.Tensor [..., in]
---@param w proteus.Tensor [out, in]
---@param slope? number
---@return proteus.Tensor [..., out]
function F.linear_leaky_relu2(x, w, slope) end

--- BigramHash bucket ids (i64) of token pairs; position 0 of each row -> buckets − 1 (§3.2).
---@param tokens proteus.Tensor i64 [B, T]
---@param buckets? integer default 2048
---@return proteus.Tensor
function F.bigram_hash(tokens, buckets) end

--- SmearGate: (1−σ(g))⊙x + σ(g)⊙x_prev (zero before t = 0), x [B,T,C] or [T,C].
---@param x proteus.Tensor
---@param gate proteus.Tensor
---@return proteus.Tensor
function F.smear_gate(x, gate) end

--- Batched LoRA: (x Aᵀ) Bᵀ per batch element; x [B,T,in], A [B,r,in], B [B,out,r].
---@param x proteus.Tensor
---@param A proteus.Tensor
---@param B proteus.Tensor
---@return proteus.Tensor
function F.lora(x, A, B) end

--- The GPT block's residual mix and its RMS norm in one pass: y = x⊙wx + (x0⊙w0)·x0_scale, h =
--- rms_norm(y, eps)·scale. Two autograd nodes (y, and h on y), so gradients reach x, x0, wx, w0 through
--- both outputs. On the CPU bit for bit `x * wx + x0 * w0` (or `x + (x0 * w0) * x0_scale`) and F.rms_norm.
---@param x proteus.Tensor [..., C]
---@param x0 proteus.Tensor the shape of x
---@param wx proteus.Tensor|nil [C]; nil means 1
---@param w0 proteus.Tensor [C]
---@param eps? number default F.RMS_EPS
---@param scale? number the ln-scale λ on h, default 1
---@param x0_scale? number a number multiplying the x0 term after w0 (the depth scale), default 1
---@return proteus.Tensor y
---@return proteus.Tensor h
function F.mix_rms_norm(x, x0, wx, w0, eps, scale, x0_scale) end

--- Attention's q/k prologue in one op: F.rms_norm over D, F.rotary(·, rope), then × gain[h] per head.
--- One autograd node with a fused backward; on the CPU bit for bit the three unfused ops.
---@param x proteus.Tensor [B,T,H,D]
---@param rope? {dims?: integer, base?: number, train_len?: integer|false, offset?: integer} F.rotary's options (same defaults)
---@param gain? proteus.Tensor [H] (q's gain; nil for k)
---@param eps? number default F.RMS_EPS
---@return proteus.Tensor
function F.rms_norm_rotary(x, rope, gain, eps) end

-- =================================================================================================
-- proteus.nn
-- =================================================================================================

--- The GPT builder: one model class for the baseline, PROTEUS v9, #1539 and #598, selected by config
--- switches named after the submissions' environment variables (lower case).
---@class proteus.nn
---@field gpt_defaults table  every config key with its default (the baseline, spec §2.1)
---@field GPTClass table      the GPT method table
local nn = {}

--- Builds a GPT from a config table (keys: nn.gpt_defaults; unknown keys are errors that suggest the nearest).
---@param cfg table e.g. {vocab_size = 1024, num_layers = 9, model_dim = 512, num_heads = 8, num_kv_heads = 4}
---@return proteus.GPT
function nn.GPT(cfg) end

--- Validates a GPT config and fills the defaults; errors name the key and say what to do.
---@param cfg table
---@return table
function nn.gpt_config(cfg) end

--- An orthogonal matrix [rows, cols] from the generator (torch.nn.init.orthogonal_).
---@param rows integer
---@param cols integer
---@return proteus.Tensor
function nn.orthogonal(rows, cols) end

--- The key of keys nearest to name (edit distance), for "did you mean" messages.
---@param name string
---@param keys string[]
---@return string
function nn.nearest(name, keys) end

--- A GPT built by nn.GPT. Parameter names are the PyTorch state-dict names of the spec.
---@class proteus.GPT
---@field cfg table      the full config (defaults filled in)
---@field params table   the parameter registry (params.by_name[name] -> tensor)
---@field linear_hook? fun(name: string, x: proteus.Tensor)  called by GPT:linear before each product
local GPT = {}

--- Mean softcapped cross-entropy of tokens [B,T] against targets [B,T] (i64 ids); without targets, the logits.
---@param tokens proteus.Tensor
---@param targets? proteus.Tensor
---@param opts? {lora?: table}
---@return proteus.Tensor
function GPT:forward(tokens, targets, opts) end

--- Logits before the softcap, [B*T, V]; lora: optional TTT deltas (proteus.ttt).
---@param tokens proteus.Tensor
---@param lora? table
---@return proteus.Tensor
function GPT:logits(tokens, lora) end

--- Final hidden states [B,T,d] for tokens [B,T].
---@param tokens proteus.Tensor
---@param lora? table
---@return proteus.Tensor
function GPT:hidden(tokens, lora) end

--- Iterator over (name, tensor) in registration (state-dict) order: `for name, p in model:named_parameters() do`.
---@return fun(): string, proteus.Tensor
function GPT:named_parameters() end

--- The parameters as a list, in state-dict order.
---@return proteus.Tensor[]
function GPT:parameters() end

--- The number of parameter elements.
---@return integer
function GPT:num_params() end

--- The parameter called name.
---@param name string
---@return proteus.Tensor|nil
function GPT:get(name) end

--- Moves and/or casts every parameter in place ("cpu", "cuda", "cuda:1"; a dtype); returns the model.
---@param device? proteus.Device
---@param dtype? proteus.DType
---@return proteus.GPT
function GPT:to(device, dtype) end

--- Drops every parameter's gradient.
function GPT:zero_grad() end

--- The virtual layer list (physical indices) in use (recurrence repeats layers).
---@return integer[]
function GPT:layers() end

--- The attention sublayer of physical block i on normalised input h [B,T,d].
---@param i integer
---@param h proteus.Tensor
---@param tokens proteus.Tensor
---@param lora? table
---@return proteus.Tensor
function GPT:attn(i, h, tokens, lora) end

--- x [..., in] · Wᵀ for the named weight; model.linear_hook(name, x), when set, is called first
--- (quantization collects Hessians through it).
---@param name string
---@param x proteus.Tensor
---@return proteus.Tensor
function GPT:linear(name, x) end

--- The MLP sublayer of physical block i.
---@param i integer
---@param h proteus.Tensor
---@return proteus.Tensor
function GPT:mlp(i, h) end

--- One transformer block i on the residual stream x (x0: the embedding, for resid_mix).
---@param i integer
---@param x proteus.Tensor
---@param x0 proteus.Tensor
---@param tokens proteus.Tensor
---@param lora? table
---@return proteus.Tensor
function GPT:block(i, x, x0, tokens, lora) end

-- =================================================================================================
-- proteus.optim
-- =================================================================================================

--- Optimizers (AdamW/Adam, SGD, Muon), gradient clipping, EMA and SWA, and name rules that split a
--- model's parameters into groups. An optimizer is a table {kind, groups, state} with methods;
--- each group's lr is multiplied by the lr_mul given to step().
---@class proteus.optim
---@field ns5 table            the Newton–Schulz 5 coefficients {{3.4445, -4.7750, 2.0315}}
---@field polar_express table  the per-step Polar Express coefficients (§4.3)
---@field control_names string[] the control-tensor names kept f32 and optimised by AdamW
---@field rules table          rule sets for split_params (rules.proteus)
local optim = {}

--- AdamW with PyTorch semantics (decoupled weight decay). cfg: params or groups, lr, betas = {0.9, 0.999},
--- eps = 1e-8, weight_decay = 0.01, maximize = false (per group too).
---@param cfg table
---@return proteus.Optimizer
function optim.AdamW(cfg) end

--- Adam: AdamW without weight decay (weight_decay must be 0).
---@param cfg table
---@return proteus.Optimizer
function optim.Adam(cfg) end

--- SGD with PyTorch semantics: lr, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false.
--- One C call per parameter: no multi-tensor path (foreach = true is refused, as is cuda_graph in train.run).
---@param cfg table
---@return proteus.Optimizer
function optim.SGD(cfg) end

--- Muon (§2.3/§3.4/§4.3): lr = 0.02, momentum = 0.95, nesterov = true, weight_decay = 0, ns_steps = 5,
--- coeffs = "ns5"|"polar_express", ns_dtype = "bf16", row_norm = false (MuonEq-R), factor, round;
--- foreach = true, batched = true (one Newton–Schulz run per bank of same-shaped matrices of a group).
---@param cfg table
---@return proteus.Optimizer
function optim.Muon(cfg) end

--- Global L2 norm of the gradients; above max_norm every gradient is scaled by max_norm/(norm + 1e-6).
--- Returns the norm before clipping (max_norm <= 0 only measures). opts.device = true: all of it on the
--- gradients' device with no host sync (a non-finite norm scales nothing); returns the norm as a 0-d f64
--- tensor there (or writes it to opts.out, an f64 tensor of one element), the same bits as the host path.
---@param params proteus.Tensor[]|table
---@param max_norm number
---@param opts? {device?: boolean, out?: proteus.Tensor}
---@return number|proteus.Tensor
function optim.clip_grad_norm(params, max_norm, opts) end

--- The Newton–Schulz orthogonalisation of G: opts {steps=, coeffs=, dtype=, row_norm=}.
---@param G proteus.Tensor
---@param opts? table
---@return proteus.Tensor
function optim.newton_schulz(G, opts) end

--- EMA{params, decay = 0.999, every = 1, foreach = true}: an f32 shadow of each parameter; ema:update(step)
--- (= ema:prepare(step), true when due, then ema:launch()), ema:apply() copies the shadow into the params.
---@param cfg table
---@return table
function optim.EMA(cfg) end

--- SWA{params, threshold, every, ...}: running sums of snapshots; swa:maybe_add(step, lr_mul), swa:apply().
---@param cfg table
---@return table
function optim.SWA(cfg) end

--- Splits named parameters by a rule set (a table or a name of optim.rules). Returns groups
--- (name -> {names, params}) and the group names in rule order.
---@param named table list of {name, tensor} or map name -> tensor
---@param rules table|string
---@param opts? {unmatched?: string} "error" (default), "ignore", or a group that takes the rest
---@return table groups
---@return string[] order
function optim.split_params(named, rules, opts) end

--- An optimizer made by optim.AdamW, SGD or Muon.
---@class proteus.Optimizer
---@field kind string
---@field groups table[]
---@field state table
local Optimizer = {}

--- One update of every parameter that has a gradient; lr = group.lr · lr_mul. With foreach (the default
--- for AdamW, Adam and Muon; cfg.foreach = false: one C call per parameter, same bits) this is
--- prepare(lr_mul) then apply().
---@param lr_mul? number default 1
function Optimizer:step(lr_mul) end

--- Multi-tensor path, part 1 (outside any CUDA graph capture): computes the step scalars of every
--- parameter with a gradient (opts.all = true: of every parameter), counts the step, and copies the
--- scalars into a small f64 tensor on the parameters' device, kept from one prepare to the next.
---@param lr_mul? number default 1
---@param opts? {all?: boolean}
function Optimizer:prepare(lr_mul, opts) end

--- Multi-tensor path, part 2 (capturable): launches the update kernels, which read the scalars of the
--- last prepare() on the device and each parameter's .grad now; no host synchronisation. Once per prepare.
function Optimizer:apply() end

--- Drops every parameter's gradient.
function Optimizer:zero_grad() end

--- Sets a hyper-parameter on every group, e.g. opt:set("momentum", 0.95); a name that is not one of the
--- optimizer's hyper-parameters is an error naming the nearest one.
---@param key string
---@param value any
function Optimizer:set(key, value) end

--- All parameters in group order.
---@return proteus.Tensor[]
function Optimizer:parameters() end

--- A checkpointable copy of the state (numbers copied, tensors cloned).
---@return table
function Optimizer:state_dict() end

--- Restores a state_dict() of the same kind over parameters of the same shapes.
---@param sd table
function Optimizer:load_state_dict(sd) end

-- =================================================================================================
-- proteus.schedule
-- =================================================================================================

--- Learning-rate multipliers, momentum warmup and the step predicates of the records; pure
--- functions of the counters passed in.
---@class proteus.schedule
local schedule = {}

--- §2.4 wallclock warmdown: lr_mul = remaining/warmdown time once the remaining time is below
--- warmdown_iters·step_ms, else 1. o = {elapsed_ms, step, warmdown_iters, max_ms = 600000 (false: no cap), iterations}.
---@param o table
---@return number
function schedule.wallclock_warmdown(o) end

--- §4.3 fraction-of-time warmdown: 1 while elapsed/max ≤ hold, then linear to floor. o = {elapsed_ms, max_ms, hold = 0.28, floor = 0}.
---@param o table
---@return number
function schedule.fraction_warmdown(o) end

--- §5.3 iteration warmdown: (iterations − step)/warmdown_iters in the last warmdown_iters steps, else 1.
---@param o {step: integer, iterations: integer, warmdown_iters: integer}
---@return number
function schedule.iteration_warmdown(o) end

--- Cosine from 1 at t = 0 to floor at t = total: floor + (1 − floor)(1 + cos(πt/total))/2.
---@param o {t: number, total: number, floor?: number}
---@return number
function schedule.cosine(o) end

--- Linear momentum warmup from → to over steps, then to.
---@param step integer
---@param from number
---@param to number
---@param steps integer
---@return number
function schedule.momentum_warmup(step, from, to, steps) end

--- Late QAT switch: lr_mul < threshold (0.15 in the records).
---@param lr_mul number
---@param threshold number
---@return boolean
function schedule.qat_due(lr_mul, threshold) end

--- SWA snapshot predicate: lr_mul < threshold (0.2) and step % every (50) == 0.
---@param lr_mul number
---@param step integer
---@param threshold? number
---@param every? integer
---@return boolean
function schedule.swa_due(lr_mul, step, threshold, every) end

--- §2.4 stop rule: the accumulated training time reached the cap.
---@param elapsed_ms number
---@param max_ms number|false
---@return boolean
function schedule.should_stop(elapsed_ms, max_ms) end

-- =================================================================================================
-- proteus.data
-- =================================================================================================

--- Token shards, training streams, documents, the tokenizer's BPB byte tables and the score-first
--- ledger over the validation stream. Token positions are 0-based.
---@class proteus.data
---@field BOS integer the document-start token id
local data = {}

--- The repository root (where data/ lives): PROTEUS_HOME, else derived from the Lua library path.
---@return string
function data.root() end

--- Paths {train, val, tokenizer}: the bundled sample, or opts.data_path (challenge layout) / train_files / val_files / tokenizer_path.
---@param opts? table
---@return {train: string, val: string, tokenizer: string}
function data.paths(opts) end

--- Loads the validation stream and tokenizer and opens the ledger: {ledger, tokens, tokenizer, tables, paths}.
---@param opts? {vocab?: integer, legal?: boolean, data_path?: string, val_files?: string, tokenizer_path?: string}
---@return table
function data.open_val(opts) end

--- The training stream over a glob of shards (spec §2.4): s:next_batch(n, rank, world) -> Tokens (n+1), s:pos(), s:set_pos().
---@param glob string
---@return table
function data.stream(glob) end

--- The concatenation of a sorted glob of shards, as Tokens (#t, t:get(i), t:sub(a, b), t:tensor(a, b, dtype)).
---@param glob string
---@return table
function data.read(glob) end

--- One shard as Tokens (validated: magic, version, size).
---@param path string
---@return table
function data.read_shard(path) end

--- The validated token count of one shard.
---@param path string
---@return integer
function data.shard_info(path) end

--- Sorted paths and token counts of a glob.
---@param glob string
---@return string[] paths
---@return integer[] counts
function data.list(glob) end

--- Tokens from a Lua list of ids or a packed little-endian uint16 string.
---@param src integer[]|string
---@return table
function data.tokens(src) end

--- A SentencePiece .model read natively: tok:vocab_size(), tok:piece(id), tok:byte_tables(V), tok:sha256().
---@param path string
---@return table
function data.tokenizer(path) end

--- Documents of a token buffer (§3.7): a list of {start, len} (0-based starts).
---@param tokens table
---@return {start: integer, len: integer}[]
function data.docs(tokens) end

--- Opens a ledger over Tokens with a Tokenizer (opts.vocab) or byte tables; opts.legal default true.
---@param tokens table
---@param tok_or_tables table
---@param opts? {vocab?: integer, legal?: boolean, name?: string}
---@return table
function data.ledger(tokens, tok_or_tables, opts) end

--- The ledger report's fields that go into results.json.
---@param report table
---@return table
function data.ledger_summary(report) end

--- One line with a BPB and the ledger's verdict beside it.
---@param report table
---@param label? string
---@return string
function data.format_bpb(report, label) end

--- Tokenizes a text file with spm_encode (one document per line): BOS + tokens per non-empty line.
---@param text_path string
---@param model_path? string
---@return table
function data.encode_file(text_path, model_path) end

--- SHA-256 of a string, hex.
---@param s string
---@return string
function data.sha256(s) end

--- SHA-256 of a file's bytes, hex.
---@param path string
---@return string
function data.sha256_file(path) end

-- =================================================================================================
-- proteus.eval
-- =================================================================================================

--- Validation BPB through the score-first ledger: the standard evaluation (§1.4) and the sliding
--- window (§1.5). The model is any function from i64 tokens [B,T] to logits [B*T, V] before the softcap.
---@class proteus.eval
local eval = {}

--- The softcap the ledger applies by default (30).
eval.DEFAULT_SOFTCAP = 30

--- Tokens per forward of the standard evaluation (spec §1.4).
eval.STANDARD_BATCH_TOKENS = 65536

--- Windows per forward of the sliding evaluation (spec §1.5).
eval.SLIDING_BATCH_SEQS = 32

--- Non-overlapping windows of seq_len; returns {loss, bpb, report, line, windows, scored, eval_time_ms}.
---@param val table from data.open_val (or {tokens, tables})
---@param logits_fn fun(x: proteus.Tensor): proteus.Tensor
---@param opts {seq_len: integer, batch_seqs?: integer, softcap?: number, label?: string, log?: function|false, ledger?: table, rank?: integer, world?: integer}
---@return table
function eval.standard(val, logits_fn, opts) end

--- Sliding windows of seq_len every stride tokens; each target scored once, with the most context.
---@param val table
---@param logits_fn fun(x: proteus.Tensor): proteus.Tensor
---@param opts {seq_len: integer, stride: integer, batch_seqs?: integer, softcap?: number, label?: string, log?: function|false, ledger?: table}
---@return table
function eval.sliding(val, logits_fn, opts) end

--- The windows eval.standard would run (for tests and distributed splits).
---@param n_tokens integer
---@param opts table
---@return table
function eval.standard_plan(n_tokens, opts) end

--- The windows eval.sliding would run.
---@param n_tokens integer
---@param opts table
---@return table
function eval.sliding_plan(n_tokens, opts) end

-- =================================================================================================
-- proteus.run
-- =================================================================================================

--- A run directory: run.log, metrics.jsonl and results.json (docs/results.md).
---@class proteus.run
---@field RESULTS_SCHEMA table  the fields of results.json
local run = {}

--- 16,000,000: the artifact cap written into results.json.
run.ARTIFACT_LIMIT = 16000000

--- "run.log"
run.LOG_FILE = "run.log"

--- "metrics.jsonl"
run.METRICS_FILE = "metrics.jsonl"

--- "results.json"
run.RESULTS_FILE = "results.json"

--- Opens (creates) a run directory: opts {recipe, preset, run_dir, runs_root = "runs", time, quiet}.
---@param opts table
---@return proteus.Run
function run.open(opts) end

--- The results table as written: every schema field present, values checked.
---@param tbl table
---@return table
function run.normalize_results(tbl) end

--- Writes text to path atomically (path.tmp, then rename).
---@param path string
---@param text string
function run.write_atomic(path, text) end

--- Reads a results.json back (json.null for null).
---@param path string
---@return table
function run.read_results(path) end

--- An open run directory (run.open).
---@class proteus.Run
---@field dir string the directory
local Run = {}

--- Prints a line (unless quiet) and appends it to run.log; more arguments: string.format.
---@param line string
---@return string
function Run:log(line, ...) end

--- Appends one JSON record ("step" first) to metrics.jsonl.
---@param m table e.g. {step = 10, train_loss = 3.21}
function Run:log_metrics(m) end

--- Logs a BPB with the ledger's verdict (data.format_bpb).
---@param report table
---@param label? string
---@return string
function Run:log_bpb(report, label) end

--- Writes results.json atomically; returns the path and the table as written.
---@param tbl table
---@return string path
---@return table written
function Run:write_results(tbl) end

--- A file inside the run directory.
---@param name string
---@return string
function Run:path(name) end

--- Closes run.log and metrics.jsonl (also on `<close>`).
function Run:close() end

-- =================================================================================================
-- proteus.codec
-- =================================================================================================

--- Byte codecs for artifacts (zstd 1..22, brotli 0..11, zlib 0..9, "none"), the 4-byte shuffle and
--- int6 packing, on Lua strings.
---@class proteus.codec
---@field names string[]     the codec names
---@field max_level table    name -> highest level
local codec = {}

--- Compresses s; level defaults to the codec's maximum.
---@param s string
---@param name "zstd"|"brotli"|"zlib"|"none"
---@param level? integer
---@return string
function codec.compress(s, name, level) end

--- Decompresses s; max_len bounds the output (default 2 GiB).
---@param s string
---@param name string
---@param max_len? integer
---@return string
function codec.decompress(s, name, max_len) end

--- Compresses with an optional byte shuffle first (opts.shuffle).
---@param s string
---@param name string
---@param level? integer
---@param opts? {shuffle?: boolean}
---@return string
function codec.encode(s, name, level, opts) end

--- The inverse of codec.encode.
---@param s string
---@param name string
---@param opts? {shuffle?: boolean}
---@param max_len? integer
---@return string
function codec.decode(s, name, opts, max_len) end

--- Tries each candidate {name, level, shuffle = bool}; returns the smallest bytes, its candidate and every size.
---@param s string
---@param candidates table[]
---@return string bytes
---@return table best
---@return table[] tried
function codec.smallest(s, candidates) end

--- The 4-byte byte shuffle of #1539 (§4.5).
---@param s string
---@return string
function codec.shuffle4(s) end

--- The inverse of shuffle4.
---@param s string
---@return string
function codec.unshuffle4(s) end

--- int8 values in [-32, 31] -> ceil(n/4)·3 bytes (4 values in 3 bytes).
---@param s string
---@return string
function codec.pack_int6(s) end

--- The inverse of pack_int6 (n values).
---@param s string
---@param n integer
---@return string
function codec.unpack_int6(s, n) end

--- A contiguous tensor's bytes (little-endian).
---@param t proteus.Tensor
---@return string
function codec.tensor_bytes(t) end

--- A tensor of dtype and shape from bytes.
---@param s string
---@param dtype proteus.DType
---@param shape proteus.Shape
---@return proteus.Tensor
function codec.tensor_from_bytes(s, dtype, shape) end

-- =================================================================================================
-- proteus.safetensors
-- =================================================================================================

--- Save and load weights in the safetensors format (readable by PyTorch, JAX, Hugging Face tools).
---@class proteus.safetensors
local safetensors = {}

--- Writes tensors (name -> tensor) and optional metadata (string -> string) atomically.
---@param path string
---@param tensors table<string, proteus.Tensor>
---@param metadata? table<string, string>
function safetensors.save(path, tensors, metadata) end

--- Reads a file: tensors (name -> CPU tensor) and metadata; the header is validated first.
---@param path string
---@return table<string, proteus.Tensor> tensors
---@return table<string, string> metadata
function safetensors.load(path) end

--- Saves a module's named parameters.
---@param path string
---@param module table with named_parameters()
---@param metadata? table<string, string>
function safetensors.save_module(path, module, metadata) end

-- =================================================================================================
-- proteus.json
-- =================================================================================================

--- A small JSON encoder and decoder (RFC 8259) for results and metrics.
---@class proteus.json
---@field null table the JSON null value
local json = {}

--- Encodes v (opts.indent: spaces per level).
---@param v any
---@param opts? {indent?: integer}
---@return string
function json.encode(v, opts) end

--- Decodes one JSON text.
---@param s string
---@return any
function json.decode(s) end

--- Reads and decodes a JSON file; errors name the path.
---@param path string
---@return any
function json.read(path) end

--- Marks t as a JSON array (also when empty).
---@param t table
---@return table
function json.array(t) end

--- Marks t as an object whose keys in order come first.
---@param order string[]
---@param t table
---@return table
function json.object(order, t) end

--- The JSON text of a number (integers exact, floats round-tripping, non-finite as null).
---@param x number
---@return string
function json.number(x) end

-- =================================================================================================
-- proteus.testing
-- =================================================================================================

--- Helpers for tests: finite-difference gradient checks and tensor comparisons.
---@class proteus.testing
local testing = {}

--- Checks the gradients of fn at inputs (f64) against central differences.
--- Returns true, or false and a message naming the input, element and both values.
---@param fn function
---@param inputs proteus.Tensor[]
---@param opts? {eps?: number, atol?: number, rtol?: number, seed?: integer}
---@return boolean ok
---@return string? why
function testing.gradcheck(fn, inputs, opts) end

--- The maximum absolute difference of two same-shaped tensors.
---@param a proteus.Tensor
---@param b proteus.Tensor
---@return number
function testing.max_abs_diff(a, b) end

--- A tensor's values as a flat Lua list.
---@param t proteus.Tensor
---@return number[]
function testing.flat(t) end

--- Fills t with deterministic numbers in [-1, 1] (independent of the tensor generator).
---@param t proteus.Tensor
---@param seed? integer
---@return proteus.Tensor
function testing.random_fill(t, seed) end

--- Relative norm ‖got − want‖ / ‖want‖, in f64 on the CPU (tensors of any float dtype on any device);
--- ‖want‖ is floored at 1e-300.
---@param got proteus.Tensor
---@param want proteus.Tensor
---@return number
function testing.rel(got, want) end

--- Raises unless got and want (any device) have the same shape, dtype and bits element by element
--- (-0 differs from +0; a NaN equals a NaN of the same bits); the error names `what` and the first
--- differing element.
---@param got proteus.Tensor
---@param want proteus.Tensor
---@param what? string names the tensor in the error (default "tensor")
function testing.same_bits(got, want, what) end

--- The PROTEUS optimizer split (spec §3.4) of a model, as the training tests use it: AdamW for the tied
--- embedding (lr 0.03), Muon for the 2-D block matrices (lr 0.02, momentum 0.95), AdamW for the scalars
--- (lr 0.02); betas {0.9, 0.95}, weight decay 0.04. Returns the three optimizers and the {name, param}
--- pairs of the model.
---@param model proteus.GPT
---@return table optimizers
---@return table named
function testing.proteus_optimizers(model) end

--- s quoted for a POSIX shell command line (single quotes, embedded quotes escaped).
---@param s any
---@return string
function testing.shell_quote(s) end

--- The running proteus binary as an absolute path (for tests that start child processes): $PROTEUS_BIN
--- when set, else the interpreter at the lowest `arg` index; a bare name is left for PATH to find.
---@param who? string names the caller in the error when no binary can be found
---@return string
function testing.proteus_bin(who) end

-- =================================================================================================
-- proteus.artifact
-- =================================================================================================

--- A model quantized by a proteus.quant policy, packed into the PTZ1 container (docs/artifact.md),
--- with the size accounting of the 16,000,000-byte cap; and loading it back.
---@class proteus.artifact
local artifact = {}

--- 16,000,000: the cap on model bytes + code bytes.
artifact.CAP = 16000000

--- Quantizes model by policy and packs it: bytes and info (sizes, schemes, results).
---@param model proteus.GPT
---@param policy table|string a proteus.quant policy
---@param opts? table codec, level, shuffle, recipe, config, tokenizer_sha256, hessians, int6_packing
---@return string bytes
---@return table info
function artifact.pack(model, policy, opts) end

--- Packs quantize_model results (a list) into artifact bytes.
---@param results table[]
---@param policy table
---@param opts? table
---@return string bytes
---@return table info
function artifact.pack_results(results, policy, opts) end

--- Packs and writes atomically after checking the cap (opts.allow_over); info.account has the sizes.
---@param path string
---@param model proteus.GPT
---@param policy table|string
---@param opts? table
---@return table info
function artifact.write(path, model, policy, opts) end

--- Reads an artifact: name -> dequantized f32 tensor, and meta (recipe, config, names, ...).
---@param path string
---@return table<string, proteus.Tensor> tensors
---@return table meta
function artifact.load(path) end

--- Loads an artifact into a model's parameters in place (names and shapes must match); returns meta.
---@param model proteus.GPT
---@param path string
---@param opts? {recipe?: string}
---@return table meta
function artifact.load_into(model, path, opts) end

--- Size accounting: {model_bytes, code_bytes, code_files, host_bytes, total, cap, fits, lines}.
---@param model_bytes integer
---@param opts? table recipe_path, host_path, cap
---@return table
function artifact.account(model_bytes, opts) end

--- The code files of this run (the recipe and every loaded Lua module): sorted {path, bytes}.
---@param recipe_path? string
---@return table[]
function artifact.code_files(recipe_path) end

--- The dequantized f32 tensor of one unpacked container entry.
---@param e table
---@return proteus.Tensor
function artifact.entry_tensor(e) end

-- =================================================================================================
-- proteus.cuda
-- =================================================================================================

---@alias proteus.CudaDevice integer|string      a CUDA ordinal (0 = "cuda:0") or "cuda", "cuda:N"; default 0
---@alias proteus.CudaGraph {replay: fun(self), free: fun(self), stats: fun(self): table, outputs: fun(self): any}  g:replay() runs the captured work again (asynchronous); g:stats() = {device, nodes, replays, pool_reserved_bytes, pool_allocated_bytes, pool_peak_allocated_bytes, pool_blocks, pool_allocs, pool_frees, pool_reuses, pool_from_cache, pool_cuda_mallocs, pool_adopted}; g:outputs() = the captured function's results; g:free() (also on collection) destroys it and releases its pool

--- The CUDA backend: devices, the caching allocator's statistics, synchronisation, timing events and
--- CUDA graphs. Without nvcc at build time every function but built, is_available,
--- unavailable_reason and capturing raises "CUDA not built into this proteus"; without a device,
--- "cuda:0: no CUDA device is usable (...)".
---@class proteus.cuda
local cuda = {}

--- true when this proteus was compiled with the CUDA backend.
---@return boolean
function cuda.built() end

--- true when the backend is built and at least one device is usable.
---@return boolean
function cuda.is_available() end

--- Why CUDA cannot be used here ("" when it can).
---@return string
function cuda.unavailable_reason() end

--- Number of usable devices.
---@return integer
function cuda.device_count() end

--- The device's name as the driver reports it.
---@param dev? proteus.CudaDevice
---@return string
function cuda.device_name(dev) end

--- {name, major, minor, sm_count, total_bytes, l2_bytes, smem_per_block_optin}.
---@param dev? proteus.CudaDevice
---@return table
function cuda.device_info(dev) end

--- Allocator statistics: allocated/requested/reserved/cached bytes, peaks, counts of allocations,
--- frees, cache hits, cudaMalloc/cudaFree calls and out-of-memory flushes, and n_graph_pools,
--- graph_pool_reserved_bytes, graph_pool_allocated_bytes (memory of live CUDA graphs, included in
--- the other counts).
---@param dev? proteus.CudaDevice
---@return table
function cuda.memory_stats(dev) end

--- Resets the peaks to the current values.
---@param dev? proteus.CudaDevice
function cuda.reset_peak_stats(dev) end

--- Returns the cached (free) blocks to the driver (all devices when dev is nil); live graphs keep
--- their pools.
---@param dev? proteus.CudaDevice
function cuda.empty_cache(dev) end

--- Waits for all queued work on the device and raises any kernel error.
---@param dev? proteus.CudaDevice
function cuda.synchronize(dev) end

--- A timing event on the compute stream: e:record(), e:synchronize(), e:elapsed_ms(later), e:release().
---@return userdata
function cuda.event() end

--- "1.50 GiB", "512 B".
---@param n integer bytes
---@return string
function cuda.fmt_bytes(n) end

--- One line summarising memory_stats(dev).
---@param dev? proteus.CudaDevice
---@return string
function cuda.memory_summary(dev) end

--- Median milliseconds of fn() between two events, after `warmup` untimed calls; also the sorted times.
---@param fn fun()
---@param opts? {warmup?: integer, repeats?: integer, device?: proteus.CudaDevice}
---@return number median_ms
---@return number[] times
function cuda.time(fn, opts) end

--- The device this thread is capturing a CUDA graph on, or nil.
---@return integer|nil
function cuda.capturing() end

--- Captures fn() into a CUDA graph (one device's compute stream) and returns the graph and fn's
--- results. Nothing runs during the capture; g:replay() runs the recorded kernels with one launch
--- on the same memory each time, so warm fn up eagerly first, keep the tensors it reads alive and
--- change inputs in place (x:copy_(new) before g:replay()). Tensors made during the capture live in
--- the graph's private pool. A host read (tensor:item(), :totable(), printing), synchronize, events,
--- a host-to-device copy or another device inside fn raises "... cannot run inside a CUDA graph
--- capture"; any error in fn aborts the capture cleanly and is raised again with "cuda.graph:".
---@param fn fun(): ...
---@param opts? {device?: proteus.CudaDevice}
---@return proteus.CudaGraph graph
---@return any ... fn's results (kept alive with the graph)
function cuda.graph(fn, opts) end

return pt
