;; The coordinator's hot loops over float32 uploads, in WebAssembly SIMD (128-bit: 4 float32 or 2
;; float64 lanes; each 4 loaded float32 values are widened to float64 in two halves). Compiled to vector-kernels.wasm at build
;; time (scripts/build-kernels.mjs). Pointers are byte offsets into the imported memory, counts are
;; values. Main loops take 8 values per iteration (independent chains keep the SIMD units busy),
;; then the n mod 8 tail one at a time.
;;
;; Every result is bit-identical to the pure-JS kernels (js-kernels.ts) because both do the same
;; IEEE float64 operations in the same order: float32 -> float64 is exact, so is the square of a
;; float32 in float64, and wasm SIMD has no fused multiply-add.
(module
  (import "env" "memory" (memory 1))

  ;; Sum of squares of n float32 values at $src, in float64: eight partial sums (value i goes to
  ;; sum i mod 8; vector $sk holds sums 2k and 2k+1), combined as ((s0 + s1) + (s2 + s3)) +
  ;; ((s4 + s5) + (s6 + s7)), then the tail values added in order. NaN or +Infinity exactly when some
  ;; value is NaN or infinite: squares of finite float32 values (at most 1.2e77) cannot overflow a
  ;; float64 sum of fewer than 2^32 of them.
  (func (export "sumOfSquares") (param $src i32) (param $n i32) (result f64)
    (local $end i32) (local $v v128) (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local $total f64) (local $x f64) (local $a v128) (local $b v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done
      (loop $eights
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $a (v128.load (local.get $src)))
        (local.set $b (v128.load offset=16 (local.get $src)))
        (local.set $v (f64x2.promote_low_f32x4 (local.get $a)))
        (local.set $s0 (f64x2.add (local.get $s0) (f64x2.mul (local.get $v) (local.get $v))))
        (local.set $v (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $a) (local.get $a))))
        (local.set $s1 (f64x2.add (local.get $s1) (f64x2.mul (local.get $v) (local.get $v))))
        (local.set $v (f64x2.promote_low_f32x4 (local.get $b)))
        (local.set $s2 (f64x2.add (local.get $s2) (f64x2.mul (local.get $v) (local.get $v))))
        (local.set $v (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $b) (local.get $b))))
        (local.set $s3 (f64x2.add (local.get $s3) (f64x2.mul (local.get $v) (local.get $v))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (br $eights)))
    (local.set $total (f64.add (f64.add (f64.add (f64x2.extract_lane 0 (local.get $s0)) (f64x2.extract_lane 1 (local.get $s0))) (f64.add (f64x2.extract_lane 0 (local.get $s1)) (f64x2.extract_lane 1 (local.get $s1)))) (f64.add (f64.add (f64x2.extract_lane 0 (local.get $s2)) (f64x2.extract_lane 1 (local.get $s2))) (f64.add (f64x2.extract_lane 0 (local.get $s3)) (f64x2.extract_lane 1 (local.get $s3))))))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 7)) (i32.const 2))))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $x (f64.promote_f32 (f32.load (local.get $src))))
        (local.set $total (f64.add (local.get $total) (f64.mul (local.get $x) (local.get $x))))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (br $tail)))
    (local.get $total))

  ;; acc[i] += scale * src[i] for n values: float64 accumulator at $acc, float32 values at $src.
  (func (export "addScaled") (param $acc i32) (param $src i32) (param $n i32) (param $scale f64)
    (local $end i32) (local $s v128) (local $a v128) (local $b v128)
    (local.set $s (f64x2.splat (local.get $scale)))
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done
      (loop $eights
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $a (v128.load (local.get $src)))
        (local.set $b (v128.load offset=16 (local.get $src)))
        (v128.store offset=0 (local.get $acc)
          (f64x2.add (v128.load offset=0 (local.get $acc)) (f64x2.mul (local.get $s) (f64x2.promote_low_f32x4 (local.get $a)))))
        (v128.store offset=16 (local.get $acc)
          (f64x2.add (v128.load offset=16 (local.get $acc)) (f64x2.mul (local.get $s) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $a) (local.get $a))))))
        (v128.store offset=32 (local.get $acc)
          (f64x2.add (v128.load offset=32 (local.get $acc)) (f64x2.mul (local.get $s) (f64x2.promote_low_f32x4 (local.get $b)))))
        (v128.store offset=48 (local.get $acc)
          (f64x2.add (v128.load offset=48 (local.get $acc)) (f64x2.mul (local.get $s) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $b) (local.get $b))))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 64)))
        (br $eights)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 7)) (i32.const 2))))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $src) (local.get $end)))
        (f64.store (local.get $acc)
          (f64.add (f64.load (local.get $acc)) (f64.mul (local.get $scale) (f64.promote_f32 (f32.load (local.get $src))))))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 8)))
        (br $tail))))

  ;; acc[i] += weight * (scale * q[i]) for n int8 values q at $src (an int8 upload's tensor, compression.ts):
  ;; scale * q is a float32 multiply (exact product of a float32 and an 8-bit integer, rounded once:
  ;; the same value as Math.fround(scale * q), the dense decoder's), widened to float64, times
  ;; weight, added: the same operations as the JS fold of the view (and as addScaled of the decode).
  (func (export "addInt8") (param $acc i32) (param $src i32) (param $n i32) (param $scale f32) (param $weight f64)
    (local $end i32) (local $sc v128) (local $w v128) (local $q v128) (local $lo v128) (local $hi v128)
    (local.set $sc (f32x4.splat (local.get $scale)))
    (local.set $w (f64x2.splat (local.get $weight)))
    (local.set $end (i32.add (local.get $src) (i32.and (local.get $n) (i32.const -8))))
    (block $done
      (loop $eights
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $q (v128.load8x8_s (local.get $src)))
        (local.set $lo (f32x4.mul (local.get $sc) (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $q)))))
        (local.set $hi (f32x4.mul (local.get $sc) (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $q)))))
        (v128.store offset=0 (local.get $acc)
          (f64x2.add (v128.load offset=0 (local.get $acc)) (f64x2.mul (local.get $w) (f64x2.promote_low_f32x4 (local.get $lo)))))
        (v128.store offset=16 (local.get $acc)
          (f64x2.add (v128.load offset=16 (local.get $acc)) (f64x2.mul (local.get $w) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $lo) (local.get $lo))))))
        (v128.store offset=32 (local.get $acc)
          (f64x2.add (v128.load offset=32 (local.get $acc)) (f64x2.mul (local.get $w) (f64x2.promote_low_f32x4 (local.get $hi)))))
        (v128.store offset=48 (local.get $acc)
          (f64x2.add (v128.load offset=48 (local.get $acc)) (f64x2.mul (local.get $w) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $hi) (local.get $hi))))))
        (local.set $src (i32.add (local.get $src) (i32.const 8)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 64)))
        (br $eights)))
    (local.set $end (i32.add (local.get $end) (i32.and (local.get $n) (i32.const 7))))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $src) (local.get $end)))
        (f64.store (local.get $acc)
          (f64.add (f64.load (local.get $acc)) (f64.mul (local.get $weight) (f64.promote_f32 (f32.mul (local.get $scale) (f32.convert_i32_s (i32.load8_s (local.get $src))))))))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 8)))
        (br $tail))))
)
