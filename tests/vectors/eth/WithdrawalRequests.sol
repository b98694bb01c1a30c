// SPDX-License-Identifier: CC0-1.0
// softstake's test EIP-7002 withdrawal request contract, written from the
// EIP's specification: the same storage layout (excess, count, queue head
// and tail, 3 slots per request from slot 4), fee = fake_exponential(1,
// excess, 17), 56-byte requests (pubkey ++ amount in gwei, big endian),
// empty calldata returning the fee, and the system call (from
// 0xff..fe) dequeuing up to 16 requests and updating the excess. Its
// runtime code is placed at the EIP's address on anvil (anvil_setCode),
// which has no Prague system contracts of its own.
pragma solidity 0.8.30;

contract WithdrawalRequests {
    address constant SYSTEM_ADDRESS = 0xffffFFFfFFffffffffffffffFfFFFfffFFFfFFfE;
    uint256 constant EXCESS_SLOT = 0;
    uint256 constant COUNT_SLOT = 1;
    uint256 constant HEAD_SLOT = 2;
    uint256 constant TAIL_SLOT = 3;
    uint256 constant QUEUE_OFFSET = 4;
    uint256 constant MAX_PER_BLOCK = 16;
    uint256 constant TARGET_PER_BLOCK = 2;
    uint256 constant MIN_FEE = 1;
    uint256 constant FEE_UPDATE_FRACTION = 17;

    fallback(bytes calldata input) external payable returns (bytes memory) {
        if (msg.sender == SYSTEM_ADDRESS) {
            return dequeue();
        }
        uint256 fee = fakeExponential(MIN_FEE, load(EXCESS_SLOT), FEE_UPDATE_FRACTION);
        if (input.length == 0) {
            require(msg.value == 0, "no value on a fee read");
            return abi.encode(fee);
        }
        require(input.length == 56, "request is pubkey (48) ++ amount (8)");
        require(msg.value >= fee, "fee too low");
        store(COUNT_SLOT, load(COUNT_SLOT) + 1);
        uint256 tail = load(TAIL_SLOT);
        uint256 slot = QUEUE_OFFSET + tail * 3;
        store(slot, uint256(uint160(msg.sender)));
        store(slot + 1, uint256(bytes32(input[0:32])));
        store(slot + 2, uint256(bytes32(abi.encodePacked(input[32:56], bytes8(0)))));
        store(TAIL_SLOT, tail + 1);
        return "";
    }

    function dequeue() internal returns (bytes memory out) {
        uint256 head = load(HEAD_SLOT);
        uint256 tail = load(TAIL_SLOT);
        uint256 n = tail - head;
        if (n > MAX_PER_BLOCK) n = MAX_PER_BLOCK;
        out = new bytes(0);
        for (uint256 i = 0; i < n; i++) {
            uint256 slot = QUEUE_OFFSET + (head + i) * 3;
            address source = address(uint160(load(slot)));
            bytes32 a = bytes32(load(slot + 1));
            bytes32 b = bytes32(load(slot + 2));
            out = bytes.concat(out, abi.encodePacked(source, a, bytes24(b)));
        }
        uint256 newHead = head + n;
        if (newHead == tail) {
            store(HEAD_SLOT, 0);
            store(TAIL_SLOT, 0);
        } else {
            store(HEAD_SLOT, newHead);
        }
        uint256 count = load(COUNT_SLOT);
        uint256 excess = load(EXCESS_SLOT);
        uint256 total = excess + count;
        store(EXCESS_SLOT, total > TARGET_PER_BLOCK ? total - TARGET_PER_BLOCK : 0);
        store(COUNT_SLOT, 0);
    }

    function fakeExponential(uint256 factor, uint256 numerator, uint256 denominator) internal pure returns (uint256) {
        uint256 i = 1;
        uint256 output = 0;
        uint256 acc = factor * denominator;
        while (acc > 0) {
            output += acc;
            acc = (acc * numerator) / (denominator * i);
            i += 1;
        }
        return output / denominator;
    }

    function load(uint256 slot) internal view returns (uint256 v) {
        assembly { v := sload(slot) }
    }

    function store(uint256 slot, uint256 v) internal {
        assembly { sstore(slot, v) }
    }
}
