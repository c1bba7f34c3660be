// Large zeroed float arrays in anonymous memory with transparent huge pages advised (the KV cache pool). Paged
// attention reads blocks scattered over hundreds of MiB; with 4 KiB pages nearly every block read is a TLB miss.
// Every page is touched at construction, so the resident size does not creep up as blocks are first used.
#pragma once
#include <cstddef>

namespace hearth {

class HugeBuffer {
public:
    HugeBuffer() = default;
    explicit HugeBuffer(size_t n_floats);  // throws hearth::Error when the memory cannot be had
    ~HugeBuffer();
    HugeBuffer(HugeBuffer&& o) noexcept;
    HugeBuffer& operator=(HugeBuffer&& o) noexcept;
    HugeBuffer(const HugeBuffer&) = delete;
    HugeBuffer& operator=(const HugeBuffer&) = delete;

    float* data() { return data_; }
    const float* data() const { return data_; }
    size_t size() const { return n_; }

private:
    void release();
    float* data_ = nullptr;
    size_t n_ = 0, bytes_ = 0;
};

}  // namespace hearth
