#include "textflag.h"

// func prefetch(addr uintptr)
TEXT ·prefetch(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ addr+0(FP), AX
	PREFETCHT0 (AX)
	RET

// func scan(bk *bucket, tag uint32) uint32
//
// X0-X3: the 16 slots; T = (slot & tagBits) == tag, Z = slot == 0, per
// 32-bit lane; the lanes are packed to bytes and their top bits gathered.
TEXT ·scan(SB), NOSPLIT|NOFRAME, $0-20
	MOVQ bk+0(FP), AX
	MOVL tag+8(FP), BX
	MOVQ BX, X4
	PSHUFL $0, X4, X4
	MOVL $0xFE000000, CX
	MOVQ CX, X5
	PSHUFL $0, X5, X5
	PXOR X6, X6
	MOVOU 0(AX), X0
	MOVOU 16(AX), X1
	MOVOU 32(AX), X2
	MOVOU 48(AX), X3
	MOVOU X0, X8
	MOVOU X1, X9
	MOVOU X2, X10
	MOVOU X3, X11
	PAND X5, X0
	PAND X5, X1
	PAND X5, X2
	PAND X5, X3
	PCMPEQL X4, X0
	PCMPEQL X4, X1
	PCMPEQL X4, X2
	PCMPEQL X4, X3
	PCMPEQL X6, X8
	PCMPEQL X6, X9
	PCMPEQL X6, X10
	PCMPEQL X6, X11
	MOVOU X8, X12
	MOVOU X9, X13
	MOVOU X10, X14
	MOVOU X11, X15
	PANDN X0, X8 // X8 = T &^ Z
	PANDN X1, X9
	PANDN X2, X10
	PANDN X3, X11
	PACKSSLW X9, X8
	PACKSSLW X11, X10
	PACKSSWB X10, X8
	PMOVMSKB X8, AX
	PACKSSLW X13, X12
	PACKSSLW X15, X14
	PACKSSWB X14, X12
	PMOVMSKB X12, BX
	SHLL $16, BX
	ORL BX, AX
	ANDL $0xFFFEFFFE, AX // slot 0 is the spill count
	MOVL AX, ret+16(FP)
	RET
