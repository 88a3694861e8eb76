

xPlaceholder

wVarHandleOp

w/readReadVariableOpw

mmMatMulxw/read

outRelumm

rReadFilex"†
