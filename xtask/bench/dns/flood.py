# Loopback DNS flood for cost measurement: a responder on 127.0.0.1:53 and N client sockets.
import socket, struct, sys, threading, time
dur=float(sys.argv[1]) if len(sys.argv)>1 else 5
def wire(n):
    o=b''
    for l in n.split('.'): o+=bytes([len(l)])+l.encode()
    return o+b'\0'
srv=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); srv.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
srv.bind(('127.0.0.1',53))
def serve():
    n=0
    while True:
        q,a=srv.recvfrom(512)
        n+=1
        r=bytearray(q); r[2]=0x81; r[3]=0x80; r[7]=1
        r+=b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04'+bytes([10,(n>>16)&255,(n>>8)&255,n&255])
        srv.sendto(bytes(r),a)
threading.Thread(target=serve,daemon=True).start()
c=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); c.connect(('127.0.0.1',53)); c.settimeout(0.5)
end=time.time()+dur; i=0
while time.time()<end:
    q=struct.pack('!HHHHHH',i&0xffff,0x0100,1,0,0,0)+wire(f'h{i}.flood.example')+b'\x00\x01\x00\x01'
    c.send(q)
    try: c.recv(512)
    except socket.timeout: pass
    i+=1
print(i)
